using Microsoft.Extensions.Logging;
using RinServe.Diffusion;
using static RinServe.Onnx.Tests.OnnxModels;

namespace RinServe.Onnx.Tests;

public sealed class ModelRegistryTests : IDisposable
{
    private static readonly OnnxModelOptions Cpu = new() { IntraOpThreads = 1, WarmUp = false };
    private readonly TempFolder _folder = new();
    private readonly ListLogger _log = new();

    public void Dispose() => _folder.Dispose();

    private void WriteModel(string file, int resolution, string? name = null)
    {
        var metadata = ToyMetadata(resolution);
        if (name is not null)
        {
            metadata["rin.name"] = name;
        }

        _folder.Write(file, Toy(metadata, resolution: resolution));
    }

    [Fact]
    public void Folder_with_one_bad_file_logs_it_and_serves_the_good_ones()
    {
        WriteModel("a-good.onnx", 8);
        _folder.Write("b-bad.onnx", [1, 2, 3]);
        var noKey = ToyMetadata(16);
        noKey.Remove("rin.latents");
        _folder.Write("c-no-latents.onnx", Toy(noKey, resolution: 16));
        _folder.Write("notes.txt", [1]);

        using var registry = ModelRegistry.LoadFolder(_folder.Path, Cpu, _log);
        Assert.Equal(["toy-8"], registry.Models.Select(m => m.Spec.Name));
        Assert.Contains(_log.Entries, e => e.Level == LogLevel.Error && e.Message.Contains("b-bad.onnx") && e.Message.Contains("file"));
        Assert.Contains(_log.Entries, e => e.Level == LogLevel.Error && e.Message.Contains("c-no-latents.onnx") && e.Message.Contains("rin.latents"));
    }

    [Fact]
    public void Folder_without_a_valid_model_throws()
    {
        _folder.Write("bad.onnx", [1, 2, 3]);
        var error = Assert.Throws<InvalidOperationException>(() => ModelRegistry.LoadFolder(_folder.Path, Cpu, _log));
        Assert.Contains("no valid model", error.Message);
        Assert.Throws<InvalidOperationException>(() => ModelRegistry.LoadFolder(Directory.CreateDirectory(Path.Combine(_folder.Path, "empty")).FullName, Cpu, _log));
    }

    [Fact]
    public void Duplicate_model_name_is_skipped_with_an_error()
    {
        WriteModel("a.onnx", 8, "same");
        WriteModel("b.onnx", 16, "same");
        using var registry = ModelRegistry.LoadFolder(_folder.Path, Cpu, _log);
        Assert.Single(registry.Models);
        Assert.Contains(_log.Entries, e => e.Level == LogLevel.Error && e.Message.Contains("b.onnx") && e.Message.Contains("rin.name"));
    }

    [Fact]
    public void Resolve_by_resolution_lists_what_is_loaded_when_nothing_matches()
    {
        WriteModel("small.onnx", 8);
        WriteModel("large.onnx", 16);
        using var registry = ModelRegistry.LoadFolder(_folder.Path, Cpu, _log);

        Assert.True(registry.TryResolve(16, null, out var model, out var error));
        Assert.Equal(("toy-16", null), (model!.Spec.Name, error));

        Assert.False(registry.TryResolve(300, null, out model, out error));
        Assert.Null(model);
        Assert.Equal("no model for res=300; loaded resolutions: 8, 16", error);

        Assert.False(registry.TryResolve(null, null, out _, out error));
        Assert.Contains("loaded resolutions: 8, 16", error);

        Assert.True(registry.TryResolve(null, "toy-8", out model, out _));
        Assert.Equal(8, model!.Spec.Resolution);

        Assert.False(registry.TryResolve(8, "toy-16", out _, out error));
        Assert.Contains("no model named 'toy-16' at res=8; loaded models: toy-8 (res=8)", error);
    }

    [Fact]
    public void Omitted_resolution_means_the_only_one_loaded()
    {
        WriteModel("only.onnx", 8);
        using var registry = ModelRegistry.LoadFolder(_folder.Path, Cpu, _log);
        Assert.True(registry.TryResolve(null, null, out var model, out _));
        Assert.Equal("toy-8", model!.Spec.Name);
    }

    [Fact]
    public void Several_models_at_one_resolution_need_a_name()
    {
        WriteModel("a.onnx", 8, "first");
        WriteModel("b.onnx", 8, "second");
        using var registry = ModelRegistry.LoadFolder(_folder.Path, Cpu, _log);
        Assert.False(registry.TryResolve(8, null, out _, out var error));
        Assert.Contains("first (res=8), second (res=8)", error);
        Assert.True(registry.TryResolve(8, "second", out var model, out _));
        Assert.Equal("second", model!.Spec.Name);
    }

    [Fact]
    public void Sampler_over_an_onnx_model_gives_the_same_image_alone_and_in_a_batch()
    {
        WriteModel("toy.onnx", 8);
        using var registry = ModelRegistry.LoadFolder(_folder.Path, Cpu, _log);
        var sampler = new RinSampler(registry.Models[0].Denoiser);
        var settings = new SamplerSettings(5, SamplerKind.Ddpm, "cosine", 1.5f);
        var alone = sampler.Generate(settings, [new ImageRequest(2, 99)]);
        var batch = sampler.Generate(settings, [new ImageRequest(0, 1), new ImageRequest(2, 99), new ImageRequest(1, 3)]);
        Assert.Equal(alone[0].Pixels, batch[1].Pixels);
        Assert.NotEqual(batch[0].Pixels, batch[1].Pixels);
        Assert.Equal((8, 8, 1, 64), (alone[0].Width, alone[0].Height, alone[0].Channels, alone[0].Pixels.Length));
    }
}
