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

    private void WriteModel(string file, int resolution, string? name = null, string? family = null)
    {
        var metadata = ToyMetadata(resolution);
        if (name is not null)
        {
            metadata["rin.name"] = name;
        }
        if (family is not null)
        {
            metadata["rin.family"] = family;
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
        Assert.Equal("no model or family named 'toy-16' at res=8; loaded models: toy-8 (res=8); families: toy", error);
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

    /// <summary>Two families share res 8; only fmnist has res 16; glyph is the default family.</summary>
    private ModelRegistry TwoFamilies(string? defaultFamily = "glyph")
    {
        WriteModel("fmnist-8.onnx", 8, "fmnist-8");
        WriteModel("fmnist-16.onnx", 16, "fmnist-16");
        WriteModel("glyph-8.onnx", 8, "glyph-8");
        return ModelRegistry.LoadFolder(_folder.Path, Cpu, _log, defaultFamily);
    }

    private static string Resolved(ModelRegistry registry, int? resolution, string? name)
    {
        Assert.True(registry.TryResolve(resolution, name, out var model, out var error), error);
        return model!.Spec.Name;
    }

    [Fact]
    public void Shared_resolution_without_a_model_is_the_default_familys()
    {
        using var registry = TwoFamilies();
        Assert.Equal("glyph", registry.DefaultFamily);
        Assert.Equal(["fmnist", "glyph", "fmnist"], registry.Models.Select(m => m.Spec.Family));
        Assert.Equal("glyph-8", Resolved(registry, 8, null));
        Assert.Equal("fmnist-8", Resolved(registry, 8, "fmnist-8"));
        Assert.Equal("glyph-8", Resolved(registry, 8, "glyph-8"));
    }

    [Fact]
    public void Model_may_name_a_family_with_res()
    {
        using var registry = TwoFamilies();
        Assert.Equal("fmnist-8", Resolved(registry, 8, "fmnist"));
        Assert.Equal("fmnist-16", Resolved(registry, 16, "fmnist"));
        Assert.Equal("glyph-8", Resolved(registry, 8, "glyph"));
        // A family with one resolution needs no res; one with several does, and says which it has.
        Assert.Equal("glyph-8", Resolved(registry, null, "glyph"));
        Assert.False(registry.TryResolve(null, "fmnist", out _, out var error, out var parameter));
        Assert.Equal(("res", "res is required: family 'fmnist' has several resolutions: 8, 16"), (parameter, error));
        Assert.False(registry.TryResolve(16, "glyph", out _, out error, out parameter));
        Assert.Equal(("model", "no model or family named 'glyph' at res=16; loaded models: fmnist-16 (res=16); families: fmnist"), (parameter, error));
    }

    [Fact]
    public void Resolution_the_default_family_lacks_is_the_only_model_there()
    {
        using var registry = TwoFamilies();
        Assert.Equal("fmnist-16", Resolved(registry, 16, null));
        // What GET /models marks as the default at each resolution.
        Assert.Equal(["glyph-8", "fmnist-16"], registry.Models.Where(registry.IsDefaultAt).Select(m => m.Spec.Name));
    }

    [Theory]
    [InlineData(null)]
    [InlineData("other")]
    public void Shared_resolution_without_a_default_family_there_needs_a_model(string? defaultFamily)
    {
        using var registry = TwoFamilies(defaultFamily);
        Assert.False(registry.TryResolve(8, null, out var model, out var error, out var parameter));
        Assert.Null(model);
        Assert.Equal(("model", "several models share res=8; name one with model: fmnist-8 (res=8), glyph-8 (res=8)"), (parameter, error));
        Assert.DoesNotContain(registry.Models, m => m.Spec.Resolution == 8 && registry.IsDefaultAt(m));
        Assert.Equal("fmnist-16", Resolved(registry, 16, null));
    }

    [Fact]
    public void A_default_family_with_no_loaded_model_is_a_warning()
    {
        using var registry = TwoFamilies("other");
        Assert.Contains(_log.Entries, e => e.Level == LogLevel.Warning && e.Message.Contains("default family 'other'") && e.Message.Contains("fmnist, glyph"));
        _log.Entries.Clear();
        using var fine = ModelRegistry.LoadFolder(_folder.Path, Cpu, _log, "glyph");
        Assert.DoesNotContain(_log.Entries, e => e.Level == LogLevel.Warning && e.Message.Contains("default family"));
    }

    [Fact]
    public void Family_comes_from_rin_family_over_the_name()
    {
        WriteModel("fmnist-8.onnx", 8, "fmnist-8");
        WriteModel("letters.onnx", 8, "letters-v2-8", family: "glyph");
        using var registry = ModelRegistry.LoadFolder(_folder.Path, Cpu, _log, "glyph");
        Assert.Equal("letters-v2-8", Resolved(registry, 8, null));
        Assert.Equal("letters-v2-8", Resolved(registry, 8, "glyph"));
        Assert.False(registry.TryResolve(8, "letters", out _, out _));
    }

    [Fact]
    public void Two_default_family_models_at_one_resolution_need_a_model()
    {
        WriteModel("glyph-a.onnx", 8, "glyph-a");
        WriteModel("glyph-b.onnx", 8, "glyph-b");
        using var registry = ModelRegistry.LoadFolder(_folder.Path, Cpu, _log, "glyph");
        Assert.False(registry.TryResolve(8, null, out _, out var error));
        Assert.Contains("several models share res=8", error);
        Assert.False(registry.TryResolve(8, "glyph", out _, out error));
        Assert.Contains("glyph-a (res=8), glyph-b (res=8)", error);
        Assert.Equal("glyph-b", Resolved(registry, 8, "glyph-b"));
    }

    [Fact]
    public void Sampler_over_an_onnx_model_gives_the_same_image_alone_and_in_a_batch()
    {
        WriteModel("toy.onnx", 8);
        using var registry = ModelRegistry.LoadFolder(_folder.Path, Cpu, _log);
        var sampler = new RinSampler(registry.Models[0].Denoiser);
        var settings = new SamplerSettings(5, "ddpm", "cosine", 1.5f);
        var alone = sampler.Generate(settings, [new ImageRequest(2, 99)]);
        var batch = sampler.Generate(settings, [new ImageRequest(0, 1), new ImageRequest(2, 99), new ImageRequest(1, 3)]);
        Assert.Equal(alone[0].Pixels, batch[1].Pixels);
        Assert.NotEqual(batch[0].Pixels, batch[1].Pixels);
        Assert.Equal((8, 8, 1, 64), (alone[0].Width, alone[0].Height, alone[0].Channels, alone[0].Pixels.Length));
    }
}
