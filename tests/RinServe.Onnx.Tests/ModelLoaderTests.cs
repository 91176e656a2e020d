using Microsoft.Extensions.Logging;
using RinServe.Diffusion;
using static RinServe.Onnx.Tests.OnnxModels;

namespace RinServe.Onnx.Tests;

public sealed class ModelLoaderTests : IDisposable
{
    private static readonly OnnxModelOptions Cpu = new() { IntraOpThreads = 1 };
    private readonly TempFolder _folder = new();
    private readonly ListLogger _log = new();

    public void Dispose() => _folder.Dispose();

    private string WriteToy(string name = "toy.onnx", Action<Dictionary<string, string>>? edit = null, Tensor[]? inputs = null, Tensor[]? outputs = null)
    {
        var metadata = ToyMetadata();
        edit?.Invoke(metadata);
        return _folder.Write(name, Toy(metadata, inputs: inputs, outputs: outputs));
    }

    private ModelContractException Refused(string path, OnnxModelOptions? options = null)
    {
        var error = Assert.Throws<ModelContractException>(() => ModelLoader.Load(path, options ?? Cpu, _log));
        Assert.Equal(path, error.FilePath);
        Assert.StartsWith(path + ": " + error.Key + ": ", error.Message);
        return error;
    }

    [Fact]
    public void Valid_model_loads_on_cpu_with_its_spec_from_metadata()
    {
        using var model = ModelLoader.Load(WriteToy(), Cpu, _log);
        Assert.Equal("CPU", model.ExecutionProvider);
        Assert.False(model.Trained);
        var spec = model.Spec;
        Assert.Equal(("toy-8", 8, 1, 3, 3, Prediction.Eps, 0.5f, true, 4, 6), (spec.Name, spec.Resolution, spec.Channels, spec.NumClasses, spec.NullClass, spec.Prediction, spec.InputScale, spec.NormalizeInput, spec.LatentCount, spec.LatentDim));
        Assert.Equal(["t-shirt", "trouser", "bag"], spec.ClassNames);
        Assert.Contains(_log.Entries, e => e.Level == LogLevel.Information && e.Message.Contains("CPU execution provider"));
        Assert.Contains(_log.Entries, e => e.Level == LogLevel.Information && e.Message.Contains("warmed up"));
    }

    [Fact]
    public void Denoiser_runs_the_graph_for_changing_batch_sizes_and_reuses_buffers()
    {
        using var model = ModelLoader.Load(WriteToy(), Cpu, _log);
        var spec = model.Spec;
        foreach (var batch in new[] { 1, 3, 2, 3, 5, 1 })
        {
            var n = spec.PixelsPerImage;
            var l = spec.LatentsPerImage;
            var x = Enumerable.Range(0, batch * n).Select(i => MathF.Sin(i * 0.37f + batch)).ToArray();
            var gamma = Enumerable.Range(0, batch).Select(b => 0.1f + 0.2f * b).ToArray();
            var classes = Enumerable.Range(0, batch).Select(b => (long)(b % 4)).ToArray();
            var latents = Enumerable.Range(0, batch * l).Select(i => MathF.Cos(i * 0.11f)).ToArray();
            var pred = new float[batch * n];
            var latentsOut = new float[batch * l];
            model.Denoiser.Denoise(batch, x, gamma, classes, latents, pred, latentsOut);

            for (var b = 0; b < batch; b++)
            {
                var latMean = latents.AsSpan(b * l, l).ToArray().Average();
                var xMean = x.AsSpan(b * n, n).ToArray().Average();
                for (var k = 0; k < n; k++)
                {
                    var expected = 0.9f * x[b * n + k] + 0.1f * gamma[b] + 0.01f * classes[b] + latMean;
                    Assert.Equal(expected, pred[b * n + k], 1e-5f);
                }

                for (var j = 0; j < l; j++)
                {
                    Assert.Equal(0.5f * latents[b * l + j] + xMean + gamma[b], latentsOut[b * l + j], 1e-5f);
                }
            }
        }
    }

    [Fact]
    public void Truncated_file_is_refused_naming_the_file()
    {
        var good = Toy(ToyMetadata());
        var error = Refused(_folder.Write("truncated.onnx", good[..(good.Length / 2)]));
        Assert.Equal("file", error.Key);
        Assert.Contains("not a loadable ONNX model", error.Message);
    }

    [Theory]
    [InlineData("hello, I am not a model")]
    [InlineData("")]
    public void Not_an_onnx_file_is_refused_naming_the_file(string content)
    {
        var error = Refused(_folder.Write("garbage.onnx", System.Text.Encoding.UTF8.GetBytes(content)));
        Assert.Equal("file", error.Key);
    }

    [Fact]
    public void Missing_file_is_refused_naming_the_file()
    {
        var error = Refused(Path.Combine(_folder.Path, "absent.onnx"));
        Assert.Equal("file", error.Key);
    }

    public static TheoryData<string> RequiredKeys => new(
        "rin.contract", "rin.name", "rin.resolution", "rin.channels", "rin.num_classes", "rin.class_names", "rin.prediction",
        "rin.input_scale", "rin.normalize_input", "rin.latents", "rin.train_schedule", "rin.patch_size", "rin.dataset",
        "rin.train_steps", "rin.params", "rin.trained");

    [Theory]
    [MemberData(nameof(RequiredKeys))]
    public void Missing_metadata_key_is_refused_naming_file_and_key(string key)
    {
        var error = Refused(WriteToy(edit: m => m.Remove(key)));
        Assert.Equal(key, error.Key);
        Assert.Contains("missing", error.Message);
    }

    [Fact]
    public void Model_without_null_class_loads_without_guidance()
    {
        using var model = ModelLoader.Load(WriteToy(edit: m => m.Remove("rin.null_class")), Cpu, _log);
        Assert.False(model.Spec.SupportsGuidance);
    }

    [Fact]
    public void Model_without_default_guidance_key_defaults_to_unguided()
    {
        using var model = ModelLoader.Load(WriteToy(), Cpu, _log);
        Assert.Equal(0f, model.Spec.DefaultGuidance);
    }

    [Fact]
    public void Default_guidance_is_read_from_metadata_and_logged()
    {
        using var model = ModelLoader.Load(WriteToy(edit: m => m["rin.default_guidance"] = " 1.5"), Cpu, _log);
        Assert.Equal(1.5f, model.Spec.DefaultGuidance);
        Assert.Contains(_log.Entries, e => e.Level == LogLevel.Information && e.Message.Contains("Loaded model toy-8") && e.Message.Contains("default guidance 1.5"));
    }

    [Fact]
    public void Zero_default_guidance_loads_without_a_null_class()
    {
        using var model = ModelLoader.Load(WriteToy(edit: m => { m.Remove("rin.null_class"); m["rin.default_guidance"] = "0"; }), Cpu, _log);
        Assert.Equal(0f, model.Spec.DefaultGuidance);
    }

    [Theory]
    [InlineData("-1")]
    [InlineData("abc")]
    [InlineData("NaN")]
    [InlineData("Infinity")]
    [InlineData("1e39")]
    [InlineData("")]
    public void Default_guidance_that_is_not_a_finite_number_at_least_zero_is_refused_naming_the_key(string value)
    {
        var error = Refused(WriteToy(edit: m => m["rin.default_guidance"] = value));
        Assert.Equal("rin.default_guidance", error.Key);
        Assert.Contains("rin.default_guidance", error.Message);
    }

    [Fact]
    public void Default_guidance_above_zero_without_null_class_is_refused_naming_the_key()
    {
        var error = Refused(WriteToy(edit: m => { m.Remove("rin.null_class"); m["rin.default_guidance"] = "1.5"; }));
        Assert.Equal("rin.default_guidance", error.Key);
        Assert.Contains("rin.null_class", error.Message);
    }

    [Fact]
    public void Default_sampler_and_steps_are_read_from_metadata_by_canonical_name()
    {
        using var plain = ModelLoader.Load(WriteToy(), Cpu, _log);
        Assert.Null(plain.Spec.DefaultSampler);
        Assert.Null(plain.Spec.DefaultSteps);
        using var model = ModelLoader.Load(WriteToy(edit: m => { m["rin.default_sampler"] = " DPMPP_2M"; m["rin.default_steps"] = "10"; }), Cpu, _log);
        Assert.Equal("dpmpp-2m", model.Spec.DefaultSampler);
        Assert.Equal(10, model.Spec.DefaultSteps);
    }

    [Theory]
    [InlineData("rin.default_sampler", "euler")]
    [InlineData("rin.default_sampler", "")]
    [InlineData("rin.default_steps", "0")]
    [InlineData("rin.default_steps", "1001")]
    [InlineData("rin.default_steps", "ten")]
    [InlineData("rin.default_steps", "-5")]
    [InlineData("rin.guidance_interval", "0.8,0.2")] // not low,high within [0, 1]
    [InlineData("rin.guidance_interval", "0.5")]
    [InlineData("rin.guidance_interval", "-0.1,0.5")]
    [InlineData("rin.guidance_interval", "0,1.5")]
    [InlineData("rin.guidance_interval", "a,b")]
    [InlineData("rin.guidance_interval", "")]
    public void Default_sampler_steps_or_guidance_interval_that_the_service_cannot_run_is_refused_naming_the_key(string key, string value)
    {
        var error = Refused(WriteToy(edit: m => m[key] = value));
        Assert.Equal(key, error.Key);
        Assert.Contains(key, error.Message);
    }

    [Fact]
    public void Guidance_interval_is_read_from_metadata_and_is_every_step_without_it()
    {
        using var plain = ModelLoader.Load(WriteToy(), Cpu, _log);
        Assert.Equal(GuidanceInterval.Whole, plain.Spec.GuidanceInterval);
        using var model = ModelLoader.Load(WriteToy("interval.onnx", m => m["rin.guidance_interval"] = " 0.1, 0.75"), Cpu, _log);
        Assert.Equal(new GuidanceInterval(0.1, 0.75), model.Spec.GuidanceInterval);
    }

    [Fact]
    public void Family_is_rin_family_when_present_else_the_name_up_to_its_first_dash()
    {
        using (var derived = ModelLoader.Load(WriteToy("derived.onnx"), Cpu, _log))
        {
            Assert.Equal(("toy-8", "toy"), (derived.Spec.Name, derived.Spec.Family));
        }
        using var named = ModelLoader.Load(WriteToy("named.onnx", m => m["rin.family"] = " letters "), Cpu, _log);
        Assert.Equal("letters", named.Spec.Family);
        Assert.Equal("plain", new ModelSpec("plain", 8, 1, 1, ["a"], null, Prediction.Eps, 1f, true, 1, 1).Family);
    }

    [Theory]
    [InlineData("")]
    [InlineData("  ")]
    public void Empty_family_is_refused_naming_the_key(string value) =>
        Assert.Equal("rin.family", Refused(WriteToy(edit: m => m["rin.family"] = value)).Key);

    [Theory]
    [InlineData("rin.contract", "2")]
    [InlineData("rin.resolution", "eight")]
    [InlineData("rin.channels", "0")]
    [InlineData("rin.num_classes", "-3")]
    [InlineData("rin.class_names", "[\"a\", \"b\"]")]
    [InlineData("rin.class_names", "t-shirt,trouser,bag")]
    [InlineData("rin.class_names", "[1, 2, 3]")]
    [InlineData("rin.null_class", "0")]
    [InlineData("rin.null_class", "4")]
    [InlineData("rin.prediction", "noise")]
    [InlineData("rin.input_scale", "-0.5")]
    [InlineData("rin.input_scale", "NaN")]
    [InlineData("rin.normalize_input", "yes")]
    [InlineData("rin.latents", "4")]
    [InlineData("rin.latents", "4,0")]
    [InlineData("rin.trained", "maybe")]
    public void Malformed_metadata_value_is_refused_naming_file_and_key(string key, string value)
    {
        var error = Refused(WriteToy(edit: m => m[key] = value));
        Assert.Equal(key, error.Key);
    }

    [Theory]
    [InlineData("rin.resolution", "16")]
    [InlineData("rin.channels", "3")]
    [InlineData("rin.latents", "4,7")]
    [InlineData("rin.latents", "5,6")]
    public void Metadata_contradicting_graph_shapes_is_refused_naming_file_and_key(string key, string value)
    {
        var error = Refused(WriteToy(edit: m => m[key] = value));
        Assert.Equal(key, error.Key);
        Assert.Contains("graph tensor", error.Message);
    }

    private static readonly Dictionary<string, (Tensor[]? Inputs, Tensor[]? Outputs)> BadGraphShapes = new()
    {
        ["fixed batch axis"] = ([new("x", OnnxFloat, 1, 1, 8, 8), new("gamma", OnnxFloat, [null]), new("class_id", OnnxInt64, [null]), new("latents_in", OnnxFloat, null, 4, 6)], null),
        ["float class ids"] = ([new("x", OnnxFloat, null, 1, 8, 8), new("gamma", OnnxFloat, [null]), new("class_id", OnnxFloat, [null]), new("latents_in", OnnxFloat, null, 4, 6)], null),
        ["rank-2 latents"] = (null, [new("pred", OnnxFloat, null, 1, 8, 8), new("latents_out", OnnxFloat, null, 24)]),
        ["no latents_out"] = (null, [new("pred", OnnxFloat, null, 1, 8, 8)]),
    };

    [Theory]
    [InlineData("fixed batch axis", "x")]
    [InlineData("float class ids", "class_id")]
    [InlineData("rank-2 latents", "latents_out")]
    [InlineData("no latents_out", "latents_out")]
    public void Graph_breaking_the_contract_is_refused_naming_file_and_tensor(string graph, string key)
    {
        var (inputs, outputs) = BadGraphShapes[graph];
        var error = Refused(WriteToy(inputs: inputs, outputs: outputs));
        Assert.Equal(key, error.Key);
    }

    [Fact]
    public void Auto_provider_falls_back_to_cpu_with_a_warning_when_cuda_cannot_be_appended()
    {
        // The default build uses the CPU ONNX Runtime package, which has no CUDA provider: appending it throws.
        using var model = ModelLoader.Load(WriteToy(), new OnnxModelOptions { ExecutionProvider = "auto", IntraOpThreads = 1 }, _log);
        if (model.ExecutionProvider == "CUDA")
        {
            Assert.Contains(_log.Entries, e => e.Message.Contains("CUDA execution provider on device 0"));
            return;
        }

        Assert.Equal("CPU", model.ExecutionProvider);
        Assert.Contains(_log.Entries, e => e.Level == LogLevel.Warning && e.Message.Contains("CUDA execution provider unavailable") && e.Message.Contains("CPU takes over"));
        var pred = new float[model.Spec.PixelsPerImage];
        model.Denoiser.Denoise(1, new float[pred.Length], [0.5f], [1], new float[model.Spec.LatentsPerImage], pred, new float[model.Spec.LatentsPerImage]);
        Assert.All(pred, v => Assert.Equal(0.06f, v, 1e-6f));
    }

    [Fact]
    public void Strict_cuda_provider_fails_fast_when_cuda_cannot_be_appended()
    {
        var path = WriteToy();
        try
        {
            using var model = ModelLoader.Load(path, new OnnxModelOptions { ExecutionProvider = "cuda", GpuMemoryLimitBytes = 1L << 30 }, _log);
            Assert.Equal("CUDA", model.ExecutionProvider);
        }
        catch (InvalidOperationException error)
        {
            Assert.Contains("ExecutionProvider=cuda", error.Message);
            Assert.Contains(path, error.Message);
        }
    }

    [Fact]
    public void Unknown_execution_provider_is_refused()
    {
        var error = Assert.Throws<ArgumentException>(() => ModelLoader.Load(WriteToy(), new OnnxModelOptions { ExecutionProvider = "tpu" }, _log));
        Assert.Contains("cpu, cuda, auto", error.Message);
    }

    [Fact]
    public void Concurrent_calls_are_refused_and_never_return_another_callers_result()
    {
        using var model = ModelLoader.Load(WriteToy(), Cpu, _log);
        var spec = model.Spec;
        const int Batch = 32;
        var wrong = 0;
        Parallel.For(0, 4, caller =>
        {
            var x = Enumerable.Repeat((float)caller, Batch * spec.PixelsPerImage).ToArray();
            var pred = new float[x.Length];
            for (var i = 0; i < 20; i++)
            {
                try
                {
                    model.Denoiser.Denoise(
                        Batch, x, new float[Batch], new long[Batch], new float[Batch * spec.LatentsPerImage], pred, new float[Batch * spec.LatentsPerImage]);
                    if (pred.Any(v => Math.Abs(v - 0.9f * caller) > 1e-5))
                    {
                        Interlocked.Increment(ref wrong);
                    }
                }
                catch (InvalidOperationException e) when (e.Message.Contains("serialize"))
                {
                    // Refused: the caller broke the one-at-a-time rule and was told so.
                }
            }
        });

        Assert.Equal(0, wrong);
    }
}
