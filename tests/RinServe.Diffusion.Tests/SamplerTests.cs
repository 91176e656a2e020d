using RinServe.Diffusion;

namespace RinServe.Diffusion.Tests;

public class SamplerTests
{
    private static readonly SamplerSettings Ddim8 = new(8, "ddim", "cosine", 0f);

    private static ImageRequest[] Requests(params ulong[] seeds) => seeds.Select((s, i) => new ImageRequest(i % 3, s)).ToArray();

    public static TheoryData<string, Prediction, string, float, bool> Configurations => new()
    {
        { "ddim", Prediction.Eps, "cosine", 0f, true },
        { "ddpm", Prediction.Eps, "cosine", 0f, true },
        { "ddpm-small", Prediction.Eps, "sigmoid@-3,3,0.9", 0f, true },
        { "ddim", Prediction.X, "linear", 0f, true },
        { "ddpm", Prediction.V, "cosine@0.2,1,1", 0f, false },
        { "ddim", Prediction.Eps, "cosine", 1.5f, true },
        { "ddpm", Prediction.V, "cosine", 3f, true },
        { "dpmpp-2m", Prediction.X, "cosine", 0f, true },
        { "dpmpp-2m", Prediction.Eps, "linear", 2f, true },
        { "dpmpp-2m", Prediction.V, "sigmoid@-3,3,0.9", 0f, false },
    };

    [Theory]
    [MemberData(nameof(Configurations))]
    public void Sampler_matches_plain_scalar_reference_of_the_contract(
        string kind, Prediction prediction, string schedule, float guidance, bool normalize)
    {
        var net = new ToyDenoiser(ToyDenoiser.MakeSpec(prediction, normalize: normalize, channels: 2)) { Record = false };
        AssertMatchesReference(net, new SamplerSettings(7, kind, schedule, guidance), [new ImageRequest(2, 11), new ImageRequest(0, 12)]);
    }

    /// <summary>Samples the requests in one batch and checks each final x̂0 against <see cref="ReferenceSampler"/>; returns them.</summary>
    private static float[] AssertMatchesReference(ToyDenoiser net, SamplerSettings settings, ImageRequest[] requests)
    {
        var x0 = new float[requests.Length * net.Spec.PixelsPerImage];
        new RinSampler(net).Sample(settings, requests, x0, null, null, default);
        for (var b = 0; b < requests.Length; b++)
        {
            var expected = ReferenceSampler.FinalX0(net, settings, requests[b], PhiloxNoise.Instance);
            var actual = x0.AsSpan(b * expected.Length, expected.Length).ToArray();
            for (var k = 0; k < expected.Length; k++)
            {
                Assert.True(Math.Abs(expected[k] - actual[k]) <= 1e-5, $"image {b} element {k}: {actual[k]} vs {expected[k]}");
            }
        }
        return x0;
    }

    [Theory]
    [InlineData("ddim", "0.2,0.7")]
    [InlineData("ddpm", "0.5,1")]
    [InlineData("dpmpp-2m", "0,0.5")]
    public void Guidance_interval_matches_plain_scalar_reference_of_the_contract(string kind, string interval)
    {
        Assert.True(GuidanceInterval.TryParse(interval, out var parsed, out _));
        var net = new ToyDenoiser(ToyDenoiser.MakeSpec(Prediction.Eps, channels: 2)) { Record = false };
        var settings = new SamplerSettings(7, kind, "cosine", 2f) { GuidanceInterval = parsed };
        ImageRequest[] requests = [new ImageRequest(2, 11), new ImageRequest(0, 12)];
        var x0 = AssertMatchesReference(net, settings, requests);

        var whole = new float[x0.Length];
        new RinSampler(net).Sample(settings with { GuidanceInterval = GuidanceInterval.Whole }, requests, whole, null, null, default);
        Assert.NotEqual(whole, x0); // the interval changed something, so the reference agreeing checked real work
    }

    [Fact]
    public void Guidance_interval_that_holds_no_step_gives_the_unguided_image()
    {
        // 8 steps sit at t = 1, 0.875, ..., 0.125: none lies in [0.9, 0.95].
        var outside = new RinSampler(new ToyDenoiser(ToyDenoiser.MakeSpec()))
            .Generate(Ddim8 with { Guidance = 3f, GuidanceInterval = new GuidanceInterval(0.9, 0.95) }, Requests(5, 6));
        var unguided = new RinSampler(new ToyDenoiser(ToyDenoiser.MakeSpec())).Generate(Ddim8, Requests(5, 6));
        Assert.Equal(unguided.Select(i => i.Pixels), outside.Select(i => i.Pixels));
    }

    [Theory]
    [InlineData(0.5, 1.0, new[] { 4, 4, 4, 4, 4, 2, 2, 2 })] // t = 1 .. 0.5 guided; below 0.5 the null class is never needed again
    [InlineData(0.0, 0.5, new[] { 4, 4, 4, 4, 4, 4, 4, 4 })] // before the interval it runs, so its latents are current when it starts
    [InlineData(0.3, 0.6, new[] { 4, 4, 4, 4, 4, 4, 2, 2 })]
    public void The_null_class_runs_until_the_guidance_interval_is_behind_the_row(double low, double high, int[] batches)
    {
        var net = new ToyDenoiser(ToyDenoiser.MakeSpec());
        var settings = Ddim8 with { Guidance = 2f, GuidanceInterval = new GuidanceInterval(low, high) };
        var images = new RinSampler(net).Generate(settings, [new ImageRequest(0, 1), new ImageRequest(2, 2)]);
        Assert.Equal(batches, net.Batches);
        Assert.All(net.ClassIds.Where(c => c.Length == 2), c => Assert.Equal([0L, 2L], c));

        // Exact: the plain reference runs both halves at every step and agrees.
        AssertMatchesReference(new ToyDenoiser(ToyDenoiser.MakeSpec()) { Record = false }, settings, [new ImageRequest(0, 1), new ImageRequest(2, 2)]);
        Assert.Equal(2, images.Count);
    }

    [Fact]
    public void Rows_take_the_models_guidance_interval_unless_their_settings_name_one()
    {
        var spec = ToyDenoiser.MakeSpec() with { GuidanceInterval = new GuidanceInterval(0.3, 0.6) };
        var sampler = new RinSampler(new ToyDenoiser(spec));
        var guided = Ddim8 with { Guidance = 2f };
        using (var row = sampler.CreateRow(new ImageRequest(1, 3), guided))
        {
            Assert.Equal(new GuidanceInterval(0.3, 0.6), row.Settings.GuidanceInterval);
        }
        using (var row = sampler.CreateRow(new ImageRequest(1, 3), guided with { GuidanceInterval = GuidanceInterval.Whole }))
        {
            Assert.Equal(GuidanceInterval.Whole, row.Settings.GuidanceInterval);
        }

        var byModel = sampler.Generate(guided, Requests(9));
        var named = new RinSampler(new ToyDenoiser(ToyDenoiser.MakeSpec())).Generate(guided with { GuidanceInterval = new GuidanceInterval(0.3, 0.6) }, Requests(9));
        var whole = new RinSampler(new ToyDenoiser(ToyDenoiser.MakeSpec())).Generate(guided, Requests(9));
        Assert.Equal(named[0].Pixels, byModel[0].Pixels);
        Assert.NotEqual(whole[0].Pixels, byModel[0].Pixels);
    }

    [Theory]
    [InlineData("0.1,0.8", true)]
    [InlineData(" 0 , 1 ", true)]
    [InlineData("0.8,0.1", false)]
    [InlineData("0.5,0.5", false)]
    [InlineData("-0.1,0.5", false)]
    [InlineData("0,1.01", false)]
    [InlineData("0.5", false)]
    [InlineData("0.1,0.5,0.9", false)]
    [InlineData("NaN,1", false)]
    [InlineData(null, false)]
    public void Guidance_interval_text_is_low_high_within_0_to_1(string? text, bool valid)
    {
        Assert.Equal(valid, GuidanceInterval.TryParse(text, out var interval, out var error));
        Assert.Equal(valid, error is null);
        if (valid)
        {
            Assert.True(GuidanceInterval.TryParse(interval.ToString(), out var again, out _));
            Assert.Equal(interval, again); // ToString round-trips
        }
        else
        {
            Assert.Contains("low", error);
        }
    }

    [Theory]
    [InlineData("ddim")]
    [InlineData("ddpm")]
    [InlineData("ddpm-small")]
    [InlineData("dpmpp-2m")]
    public void One_seed_alone_and_inside_a_batch_of_4_gives_identical_pixels(string kind)
    {
        var settings = new SamplerSettings(6, kind, "cosine", 1f);
        var net = new ToyDenoiser(ToyDenoiser.MakeSpec(channels: 3)) { Record = false };
        var sampler = new RinSampler(net);
        var alone = sampler.Generate(settings, [new ImageRequest(1, 777)]);
        var batch = sampler.Generate(settings, [new ImageRequest(0, 5), new ImageRequest(2, 6), new ImageRequest(1, 777), new ImageRequest(1, 8)]);
        Assert.Equal(alone[0].Pixels, batch[2].Pixels);
    }

    [Fact]
    public void Same_seed_gives_same_image_and_different_seeds_differ()
    {
        var sampler = new RinSampler(new ToyDenoiser(ToyDenoiser.MakeSpec(resolution: 8)) { Record = false });
        var settings = new SamplerSettings(5, "ddpm", "cosine", 0f);
        var first = sampler.Generate(settings, Requests(1, 2));
        var again = sampler.Generate(settings, Requests(1, 2));
        Assert.Equal(first[0].Pixels, again[0].Pixels);
        Assert.Equal(first[1].Pixels, again[1].Pixels);
        Assert.NotEqual(first[0].Pixels, first[1].Pixels);
    }

    [Fact]
    public void Largest_api_seed_is_accepted()
    {
        var sampler = new RinSampler(new ToyDenoiser(ToyDenoiser.MakeSpec()) { Record = false });
        var image = sampler.Generate(Ddim8, [new ImageRequest(0, long.MaxValue)]);
        Assert.Equal(16, image[0].Pixels.Length);
    }

    [Fact]
    public void Cancellation_is_checked_before_each_step()
    {
        var net = new ToyDenoiser(ToyDenoiser.MakeSpec());
        using var cts = new CancellationTokenSource();
        var seen = new List<StepProgress>();
        Assert.ThrowsAny<OperationCanceledException>(() => new RinSampler(net).Generate(
            Ddim8,
            Requests(1),
            p =>
            {
                seen.Add(p);
                if (p.Step == 3)
                {
                    cts.Cancel();
                }
            },
            cts.Token));
        Assert.Equal(3, net.Batches.Count);
        Assert.Equal([new StepProgress(1, 8), new StepProgress(2, 8), new StepProgress(3, 8)], seen);
    }

    [Fact]
    public void Ddpm_cancellation_midway_leaves_no_noise_work_running()
    {
        var net = new ToyDenoiser(ToyDenoiser.MakeSpec(resolution: 32)) { Record = false };
        var sampler = new RinSampler(net);
        for (var round = 0; round < 20; round++)
        {
            using var local = new CancellationTokenSource();
            Assert.ThrowsAny<OperationCanceledException>(() => sampler.Generate(
                new SamplerSettings(10, "ddpm", "cosine", 0f), [new ImageRequest(0, 1), new ImageRequest(1, 2)], p =>
                {
                    if (p.Step == 1 + round % 9)
                    {
                        local.Cancel();
                    }
                }, local.Token));
        }

        // The sampler still works, and still gives the image it gave before.
        var settings = new SamplerSettings(6, "ddpm", "cosine", 0f);
        Assert.Equal(sampler.Generate(settings, [new ImageRequest(0, 1)])[0].Pixels, sampler.Generate(settings, [new ImageRequest(0, 1)])[0].Pixels);
    }

    [Fact]
    public void Noise_source_failure_surfaces_from_generate_instead_of_hanging()
    {
        var sampler = new RinSampler(new ToyDenoiser(ToyDenoiser.MakeSpec()) { Record = false }, new FailingNoise());
        var error = Assert.Throws<InvalidOperationException>(() => sampler.Generate(new SamplerSettings(5, "ddpm", "cosine", 0f), [new ImageRequest(0, 1)]));
        Assert.Equal("noise broke at step 2", error.Message);
    }

    private sealed class FailingNoise : INoiseSource
    {
        public void Fill(ulong seed, int step, Span<float> destination)
        {
            if (step == 2)
            {
                throw new InvalidOperationException("noise broke at step 2");
            }

            PhiloxNoise.Instance.Fill(seed, step, destination);
        }
    }

    [Fact]
    public void Already_cancelled_token_calls_no_network()
    {
        var net = new ToyDenoiser(ToyDenoiser.MakeSpec());
        Assert.ThrowsAny<OperationCanceledException>(() => new RinSampler(net).Generate(Ddim8, Requests(1), null, new CancellationToken(true)));
        Assert.Empty(net.Batches);
    }

    [Fact]
    public void Progress_is_reported_after_every_step()
    {
        var seen = new List<StepProgress>();
        new RinSampler(new ToyDenoiser(ToyDenoiser.MakeSpec())).Generate(Ddim8, Requests(1, 2), seen.Add);
        Assert.Equal(Enumerable.Range(1, 8).Select(s => new StepProgress(s, 8)), seen);
    }

    [Fact]
    public void Guidance_runs_class_and_null_class_in_one_batch_of_2B()
    {
        var net = new ToyDenoiser(ToyDenoiser.MakeSpec());
        new RinSampler(net).Generate(Ddim8 with { Guidance = 2f }, [new ImageRequest(0, 1), new ImageRequest(2, 2)]);
        Assert.All(net.Batches, b => Assert.Equal(4, b));
        Assert.All(net.ClassIds, c => Assert.Equal([0L, 2L, 3L, 3L], c));

        // Both halves see the same x_t.
        var n = net.Spec.PixelsPerImage;
        Assert.All(net.Inputs, x => Assert.Equal(x[..(2 * n)], x[(2 * n)..]));
    }

    [Fact]
    public void Without_guidance_the_batch_is_B_and_classes_are_the_requested_ones()
    {
        var net = new ToyDenoiser(ToyDenoiser.MakeSpec());
        new RinSampler(net).Generate(Ddim8, [new ImageRequest(1, 1), new ImageRequest(2, 2)]);
        Assert.All(net.Batches, b => Assert.Equal(2, b));
        Assert.All(net.ClassIds, c => Assert.Equal([1L, 2L], c));
    }

    [Fact]
    public void Latents_start_at_zero_and_each_step_feeds_back_the_previous_latents()
    {
        var net = new ToyDenoiser(ToyDenoiser.MakeSpec());
        new RinSampler(net).Generate(Ddim8 with { Guidance = 1f }, Requests(1, 2));
        Assert.All(net.LatentsIn[0], v => Assert.Equal(0f, v));
        for (var i = 1; i < net.LatentsIn.Count; i++)
        {
            Assert.Equal(net.LatentsOut[i - 1], net.LatentsIn[i]);
        }

        // The guidance halves carry different latents (the toy's latents depend on the class).
        var half = 2 * net.Spec.LatentsPerImage;
        Assert.NotEqual(net.LatentsOut[0][..half], net.LatentsOut[0][half..]);
    }

    [Fact]
    public void Network_sees_unit_std_input_and_schedule_gamma_per_step()
    {
        var net = new ToyDenoiser(ToyDenoiser.MakeSpec(resolution: 8));
        new RinSampler(net).Generate(Ddim8, Requests(1, 2));
        var n = net.Spec.PixelsPerImage;
        foreach (var input in net.Inputs)
        {
            for (var b = 0; b < 2; b++)
            {
                var xb = input.AsSpan(b * n, n).ToArray();
                var mean = xb.Average();
                var std = Math.Sqrt(xb.Select(v => (v - mean) * (v - mean)).Average());
                Assert.Equal(1.0, std, 5);
            }
        }

        var cosine = Schedules.Parse("cosine");
        for (var i = 0; i < 8; i++)
        {
            Assert.All(net.Gammas[i], g => Assert.Equal((float)cosine.Gamma(1 - i / 8.0), g));
        }
    }

    [Fact]
    public void Zero_input_is_normalized_without_dividing_by_zero()
    {
        var output = new float[16];
        RinSampler.NetworkInput(new float[16], output, normalize: true, (0, 0));
        Assert.All(output, v => Assert.Equal(0f, v));
    }

    [Fact]
    public void Pixels_are_clip_x0_over_2b_plus_half_times_255_rounded_half_to_even_in_HWC_order()
    {
        var spec = ToyDenoiser.MakeSpec(channels: 2, resolution: 2);
        // b = 0.5: x̂0 = -0.5 -> 0, 0.5 -> 255, 0 -> 127.5 -> 128 (even), beyond ±b clipped.
        float[] x0 = [-0.5f, 0.5f, 0f, 9f, /* channel 1 */ -9f, 0.25f, -0.25f, 0.5f];
        var unit = new float[x0.Length];
        ImageOutput.ToUnitRange(x0, spec.InputScale, unit);
        Assert.Equal([0f, 1f, 0.5f, 1f, 0f, 0.75f, 0.25f, 1f], unit);

        var image = ImageOutput.ToImage(unit, spec);
        Assert.Equal((2, 2, 2), (image.Width, image.Height, image.Channels));
        Assert.Equal(new byte[] { 0, 0, 255, 191, 128, 64, 255, 255 }, image.Pixels);

        // 0.25·255 = 63.75 -> 64; 2.5 and 3.5 round to the even neighbour.
        var halves = ImageOutput.ToImage([2.5f / 255f, 3.5f / 255f, 0.5f / 255f, 1.5f / 255f], ToyDenoiser.MakeSpec(channels: 1, resolution: 2));
        Assert.Equal(new byte[] { 2, 4, 0, 2 }, halves.Pixels);
    }

    [Fact]
    public void Guidance_on_a_model_without_null_class_is_refused()
    {
        var sampler = new RinSampler(new ToyDenoiser(ToyDenoiser.MakeSpec(nullClass: null)));
        var error = Assert.Throws<ArgumentException>(() => sampler.Generate(Ddim8 with { Guidance = 1f }, Requests(1)));
        Assert.Contains("rin.null_class", error.Message);
    }

    [Theory]
    [InlineData(0, "cosine", 0f, 0L)]
    [InlineData(4, "bogus", 0f, 0L)]
    [InlineData(4, "cosine", -1f, 0L)]
    [InlineData(4, "cosine", float.NaN, 0L)]
    [InlineData(4, "cosine", 0f, 3L)]
    [InlineData(4, "cosine", 0f, -1L)]
    public void Bad_settings_or_classes_are_refused_before_any_network_call(int steps, string schedule, float guidance, long classId)
    {
        var net = new ToyDenoiser(ToyDenoiser.MakeSpec());
        var settings = new SamplerSettings(steps, "ddim", schedule, guidance);
        Assert.ThrowsAny<ArgumentException>(() => new RinSampler(net).Generate(settings, [new ImageRequest(classId, 1)]));
        Assert.Empty(net.Batches);
    }

    [Fact]
    public void Sampler_loop_allocates_nothing_per_step()
    {
        var net = new ToyDenoiser(ToyDenoiser.MakeSpec(resolution: 16)) { Record = false };
        var sampler = new RinSampler(net);
        var requests = Requests(1, 2, 3);
        var x0 = new float[3 * net.Spec.PixelsPerImage];
        long Measure(int steps, string kind)
        {
            var settings = new SamplerSettings(steps, kind, "cosine", 1f);
            sampler.Sample(settings, requests, x0, null, null, default); // warm the pools
            var least = long.MaxValue;
            for (var attempt = 0; attempt < 3; attempt++)
            {
                // The least of three runs: the runtime itself (tiering, pools) may allocate once in a while.
                var before = GC.GetAllocatedBytesForCurrentThread();
                sampler.Sample(settings, requests, x0, null, null, default);
                least = Math.Min(least, GC.GetAllocatedBytesForCurrentThread() - before);
            }

            return least;
        }

        foreach (var kind in new[] { "ddim", "ddpm", "dpmpp-2m" })
        {
            var few = Measure(2, kind);
            var many = Measure(40, kind);
            Assert.True(many - few < 24, $"{kind}: {many - few} more bytes for 38 more steps");
        }
    }

    [Fact]
    public void A_row_gives_the_same_pixels_alone_and_beside_rows_at_other_steps_with_other_samplers()
    {
        var net = new ToyDenoiser(ToyDenoiser.MakeSpec(channels: 2)) { Record = false };
        var sampler = new RinSampler(net);
        var settings = new SamplerSettings(9, "dpmpp-2m", "cosine", 1.5f);
        var image = new ImageRequest(2, 4242);
        byte[] Alone()
        {
            using var row = sampler.CreateRow(image, settings);
            using var stepper = sampler.CreateStepper();
            while (!row.Done)
            {
                stepper.Step([row]);
            }

            return row.ToImage().Pixels;
        }

        // The same row in company that changes at every step boundary: rows join late, leave early, and differ in
        // sampler, steps, schedule and guidance; the row itself sits at a different place in each call's batch.
        byte[] InCompany()
        {
            using var stepper = sampler.CreateStepper();
            using var row = sampler.CreateRow(image, settings);
            var others = new List<SampleRow>();
            try
            {
                var step = 0;
                while (!row.Done)
                {
                    if (step is 0 or 3 or 5)
                    {
                        others.Add(sampler.CreateRow(new ImageRequest(step % 3, (ulong)step), new SamplerSettings(4 + step, step == 3 ? "ddpm" : "ddim", step == 5 ? "linear" : "cosine", step == 0 ? 0f : 3f)));
                    }

                    var live = others.Where(o => !o.Done).ToList();
                    var batch = step % 2 == 0 ? [row, .. live] : live.Append(row).ToList();
                    stepper.Step(batch);
                    step++;
                }

                return row.ToImage().Pixels;
            }
            finally
            {
                others.ForEach(o => o.Dispose());
            }
        }

        Assert.Equal(Alone(), InCompany());
        Assert.Equal(sampler.Generate(settings, [image])[0].Pixels, Alone());
    }

    [Fact]
    public void A_finished_row_is_refused_by_the_stepper_and_an_unfinished_one_has_no_image()
    {
        var net = new ToyDenoiser(ToyDenoiser.MakeSpec()) { Record = false };
        var sampler = new RinSampler(net);
        using var row = sampler.CreateRow(new ImageRequest(1, 1), new SamplerSettings(1, "ddim", "cosine", 0f));
        Assert.Throws<InvalidOperationException>(() => row.ToImage());
        using var stepper = sampler.CreateStepper();
        stepper.Step([row]);
        Assert.True(row.Done);
        Assert.Throws<ArgumentException>(() => stepper.Step([row]));
        Assert.Throws<ArgumentOutOfRangeException>(() => sampler.CreateRow(new ImageRequest(1, 1), new SamplerSettings(4, "euler", "cosine", 0f)));
    }

    [Fact]
    public void Every_registered_sampler_has_a_unique_lower_case_name_and_is_found_by_name_and_alias()
    {
        Assert.Equal(Samplers.All.Count, Samplers.Names.Distinct().Count());
        foreach (var sampler in Samplers.All)
        {
            Assert.Equal(sampler.Name.ToLowerInvariant(), sampler.Name);
            Assert.True(Samplers.TryGet(sampler.Name.ToUpperInvariant(), out var found) && found == sampler);
            Assert.All(sampler.Aliases, alias => Assert.True(Samplers.TryGet(alias, out var byAlias) && byAlias == sampler));
        }

        Assert.False(Samplers.TryGet("euler", out _));
    }
}
