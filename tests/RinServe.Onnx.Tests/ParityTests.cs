using System.Text.Json;
using RinServe.Diffusion;

namespace RinServe.Onnx.Tests;

/// <summary>C# against the PyTorch reference (training/diffusion.py) on the trainer's fixtures, within 1e-4.</summary>
public sealed class ParityTests(Xunit.Abstractions.ITestOutputHelper output)
{
    private static readonly OnnxModelOptions Cpu = new() { IntraOpThreads = 1, WarmUp = false };
    private readonly ListLogger _log = new();

    private void AssertClose(float[] expected, ReadOnlySpan<float> actual, float tolerance, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        var worst = 0f;
        var at = 0;
        for (var i = 0; i < expected.Length; i++)
        {
            var diff = Math.Abs(expected[i] - actual[i]);
            if (!(diff <= worst))
            {
                (worst, at) = (diff, i);
            }
        }

        output.WriteLine($"{what}: max abs diff {worst:E2}");
        Assert.True(worst <= tolerance, $"{what}: max abs diff {worst} at {at} (expected {expected[at]}, got {actual[at]})");
    }

    [Fact]
    public void One_network_call_matches_pytorch_outputs()
    {
        var call = ParityFixtures.Index.GetProperty("call");
        using var model = ModelLoader.Load(Path.Combine(ParityFixtures.ParityFolder, call.GetProperty("model").GetString()!), Cpu, _log);
        var inputs = call.GetProperty("inputs");
        var outputs = call.GetProperty("outputs");
        var batch = ParityFixtures.Shape(inputs.GetProperty("x"))[0];
        var expectedPred = ParityFixtures.Floats(outputs.GetProperty("pred"));
        var expectedLatents = ParityFixtures.Floats(outputs.GetProperty("latents_out"));
        var pred = new float[expectedPred.Length];
        var latentsOut = new float[expectedLatents.Length];

        model.Denoiser.Denoise(
            batch,
            ParityFixtures.Floats(inputs.GetProperty("x")),
            ParityFixtures.Floats(inputs.GetProperty("gamma")),
            ParityFixtures.Longs(inputs.GetProperty("class_id")),
            ParityFixtures.Floats(inputs.GetProperty("latents_in")),
            pred,
            latentsOut);

        AssertClose(expectedPred, pred, ParityFixtures.Tolerance, "pred");
        AssertClose(expectedLatents, latentsOut, ParityFixtures.Tolerance, "latents_out");
    }

    public static TheoryData<int> Trajectories =>
        new(Enumerable.Range(0, ParityFixtures.Index.GetProperty("trajectories").GetArrayLength()));

    [Theory]
    [MemberData(nameof(Trajectories))]
    public void Sampler_trajectory_matches_python_reference_step_by_step(int index)
    {
        var trajectory = ParityFixtures.Index.GetProperty("trajectories")[index];
        var modelFile = trajectory.TryGetProperty("model", out var m) ? m.GetString()! : ParityFixtures.Index.GetProperty("model").GetString()!;
        using var model = ModelLoader.Load(Path.Combine(ParityFixtures.ParityFolder, modelFile), Cpu, _log);
        var spec = model.Spec;
        Assert.Equal(trajectory.GetProperty("input_scale").GetSingle(), spec.InputScale);
        Assert.Equal(trajectory.GetProperty("prediction").GetString(), spec.Prediction.ToString().ToLowerInvariant());

        var classes = ParityFixtures.Longs(trajectory.GetProperty("class_id"));
        var batch = classes.Length;
        var perImage = spec.PixelsPerImage;
        var noise = new FixtureNoise(
            ParityFixtures.Floats(trajectory.GetProperty("x_init")), ParityFixtures.Floats(trajectory.GetProperty("noise")), perImage, batch);
        var settings = new SamplerSettings(
            trajectory.GetProperty("steps").GetInt32(),
            SamplerName(trajectory.GetProperty("sampler").GetString()!),
            trajectory.GetProperty("schedule").GetString()!,
            trajectory.GetProperty("guidance").GetSingle());
        var requests = classes.Select((c, b) => new ImageRequest(c, (ulong)b)).ToArray();

        var expectedSteps = ParityFixtures.Floats(trajectory.GetProperty("x_steps"));
        var tolerance = ParityFixtures.Tolerance;
        var stepsSeen = 0;
        var x0 = new float[batch * perImage];
        new RinSampler(model.Denoiser, noise).Sample(
            settings,
            requests,
            x0,
            (step, x, _) =>
            {
                AssertClose(expectedSteps.AsSpan(step * batch * perImage, batch * perImage).ToArray(), x, tolerance, $"x after step {step}");
                stepsSeen++;
            },
            null,
            default);

        Assert.Equal(settings.Steps, stepsSeen);
        AssertClose(ParityFixtures.Floats(trajectory.GetProperty("x0_final")), x0, tolerance, "x0_final");

        var image = new float[x0.Length];
        ImageOutput.ToUnitRange(x0, spec.InputScale, image);
        var expectedImage = ParityFixtures.Floats(trajectory.GetProperty("image"));
        AssertClose(expectedImage, image, tolerance, "image");

        // The public path gives the same 8-bit pixels (one level of slack for values on a rounding edge).
        var pixels = new RinSampler(model.Denoiser, noise).Generate(settings, requests);
        for (var b = 0; b < batch; b++)
        {
            for (var k = 0; k < perImage; k++)
            {
                var expected = Math.Round(expectedImage[b * perImage + k] * 255.0, MidpointRounding.ToEven);
                Assert.InRange(pixels[b].Pixels[k], expected - 1, expected + 1);
            }
        }
    }

    private static string SamplerName(string name) =>
        Samplers.TryGet(name, out var sampler) ? sampler.Name : throw new ArgumentOutOfRangeException(nameof(name), name, "unknown sampler in fixture");

    [Fact]
    public void Schedules_match_python_values_at_fixture_times()
    {
        foreach (var entry in ParityFixtures.Index.GetProperty("schedules").EnumerateArray())
        {
            var schedule = Schedules.Parse(entry.GetProperty("name").GetString()!);
            var times = entry.GetProperty("t").EnumerateArray().Select(t => t.GetDouble()).ToArray();
            var gammas = entry.GetProperty("gamma").EnumerateArray().Select(g => g.GetDouble()).ToArray();
            Assert.Equal(times.Length, gammas.Length);
            for (var i = 0; i < times.Length; i++)
            {
                Assert.True(Math.Abs(schedule.Gamma(times[i]) - gammas[i]) <= 1e-12, $"{schedule} at t={times[i]}: {schedule.Gamma(times[i])} vs {gammas[i]}");
            }
        }
    }

    [Theory]
    [InlineData("bad-class-names.onnx", "rin.class_names")]
    [InlineData("bad-prediction.onnx", "rin.prediction")]
    [InlineData("missing-input-scale.onnx", "rin.input_scale")]
    [InlineData("not-onnx.onnx", "file")]
    [InlineData("truncated.onnx", "file")]
    [InlineData("wrong-latents.onnx", "rin.latents")]
    [InlineData("wrong-resolution.onnx", "rin.resolution")]
    public void Exporter_made_bad_model_is_refused_naming_file_and_key(string file, string key)
    {
        var path = Path.Combine(ParityFixtures.BadModelsFolder, file);
        var error = Assert.Throws<ModelContractException>(() => ModelLoader.Load(path, Cpu, _log));
        Assert.Equal(key, error.Key);
        Assert.StartsWith($"{path}: {key}: ", error.Message);
    }

    [Fact]
    public void Exported_model_with_a_key_removed_is_refused_naming_that_key()
    {
        var good = File.ReadAllBytes(Path.Combine(ParityFixtures.ParityFolder, "tiny.onnx"));
        using var folder = new TempFolder();
        foreach (var key in new[] { "rin.num_classes", "rin.normalize_input", "rin.trained" })
        {
            var path = folder.Write($"no-{key}.onnx", OnnxModels.WithMetadata(good, m =>
            {
                Assert.True(m.Remove(key), $"tiny.onnx has no {key}");
                return m;
            }));
            var error = Assert.Throws<ModelContractException>(() => ModelLoader.Load(path, Cpu, _log));
            Assert.Equal((path, key), (error.FilePath, error.Key));
        }

        // The rewrite itself keeps the model valid.
        using var same = ModelLoader.Load(folder.Write("same.onnx", OnnxModels.WithMetadata(good, m => m)), Cpu, _log);
        Assert.True(same.Spec.SupportsGuidance);
    }
}
