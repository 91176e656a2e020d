using RinServe.Diffusion;

namespace RinServe.Diffusion.Tests;

/// <summary>Image-sized passes cut into slices over several threads (<see cref="SliceWorkers"/>, <see cref="RowStepper.SlicePixels"/>).</summary>
public class SliceTests
{
    // 384 x 384 = 147,456 pixels: three slices, the last one short.
    private const int Resolution = 384;

    [Theory]
    [InlineData("ddim", 0f)]
    [InlineData("ddpm", 2f)]
    [InlineData("dpmpp-2m", 1.5f)]
    public void A_sliced_row_matches_the_plain_scalar_reference(string kind, float guidance)
    {
        var net = new ToyDenoiser(ToyDenoiser.MakeSpec(Prediction.X, resolution: Resolution)) { Record = false };
        Assert.Equal(3, RowStepper.Slices(net.Spec.PixelsPerImage));
        var settings = new SamplerSettings(4, kind, "cosine", guidance);
        var request = new ImageRequest(2, 31);
        var x0 = new float[net.Spec.PixelsPerImage];
        new RinSampler(net).Sample(settings, [request], x0, null, null, default);

        var expected = ReferenceSampler.FinalX0(net, settings, request, PhiloxNoise.Instance);
        var worst = expected.Select((e, k) => Math.Abs(e - x0[k])).Max();
        Assert.True(worst <= 1e-5, $"largest difference {worst}");
    }

    [Theory]
    [InlineData("ddim")]
    [InlineData("ddpm")]
    [InlineData("dpmpp-2m")]
    public void A_sliced_row_has_the_same_bits_on_one_thread_and_on_four(string kind)
    {
        var net = new ToyDenoiser(ToyDenoiser.MakeSpec(resolution: Resolution)) { Record = false };
        var sampler = new RinSampler(net);
        var settings = new SamplerSettings(5, kind, "cosine", 1f);
        float[] Run(int helpers)
        {
            using var stepper = new RowStepper(net, PhiloxNoise.Instance, helpers);
            using var row = sampler.CreateRow(new ImageRequest(1, 99), settings);
            using var other = sampler.CreateRow(new ImageRequest(0, 5), settings with { Steps = 3 });
            while (!row.Done)
            {
                stepper.Step(other.Done ? [row] : [other, row]);
            }

            return [.. row.X0, .. row.X];
        }

        var oneThread = Run(0);
        Assert.Equal(oneThread, Run(3));
        Assert.Equal(oneThread, Run(1));
    }

    [Fact]
    public void A_sliced_loop_allocates_nothing_per_step()
    {
        var net = new ToyDenoiser(ToyDenoiser.MakeSpec(resolution: Resolution)) { Record = false };
        var sampler = new RinSampler(net);
        var x0 = new float[net.Spec.PixelsPerImage];
        long Measure(int steps, string kind)
        {
            var settings = new SamplerSettings(steps, kind, "cosine", 1f);
            sampler.Sample(settings, [new ImageRequest(1, 3)], x0, null, null, default); // warm the pools
            var least = long.MaxValue;
            for (var attempt = 0; attempt < 3; attempt++)
            {
                var before = GC.GetAllocatedBytesForCurrentThread();
                sampler.Sample(settings, [new ImageRequest(1, 3)], x0, null, null, default);
                least = Math.Min(least, GC.GetAllocatedBytesForCurrentThread() - before);
            }

            return least;
        }

        foreach (var kind in new[] { "ddim", "ddpm", "dpmpp-2m" })
        {
            var few = Measure(2, kind);
            var many = Measure(12, kind);
            Assert.True(many - few < 24, $"{kind}: {many - few} more bytes for 10 more steps");
        }
    }

    [Fact]
    public void Every_slice_runs_exactly_once_call_after_call()
    {
        using var workers = new SliceWorkers(3);
        var job = new CountingJob(40);
        for (var call = 1; call <= 50; call++)
        {
            workers.Run(job, 40);
            Assert.All(job.Runs, n => Assert.Equal(call, n));
        }
    }

    [Fact]
    public void A_failing_slice_fails_the_call_and_the_next_call_runs_whole()
    {
        using var workers = new SliceWorkers(2);
        var failing = new CountingJob(16) { FailAt = 9 };
        var error = Assert.Throws<InvalidOperationException>(() => workers.Run(failing, 16));
        Assert.Equal("slice 9", error.Message);

        var job = new CountingJob(16);
        workers.Run(job, 16);
        Assert.All(job.Runs, n => Assert.Equal(1, n));
    }

    private sealed class CountingJob(int slices) : ISliceJob
    {
        public int[] Runs { get; } = new int[slices];

        public int FailAt { get; init; } = -1;

        public void RunSlice(int index)
        {
            Interlocked.Increment(ref Runs[index]);
            if (index == FailAt)
            {
                throw new InvalidOperationException($"slice {index}");
            }
        }
    }
}
