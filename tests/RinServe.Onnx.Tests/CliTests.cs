using RinServe.Cli;
using RinServe.Diffusion;
using RinServe.Jobs;
using RinServe.Worker;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.PixelFormats;

namespace RinServe.Onnx.Tests;

public sealed class CliTests
{
    private static readonly string Tiny = Path.Combine(ParityFixtures.ParityFolder, "tiny.onnx");

    private static int RunCli(params string[] args)
    {
        var entry = typeof(CliArguments).Assembly.EntryPoint!;
        return (int)entry.Invoke(null, [args])!;
    }

    [Theory]
    [InlineData("--class 1 --out a.png", "--model is required")]
    [InlineData("--model m.onnx --class 1 --out a.png --steps 0", "--steps must be an integer in 1..1000,")]
    [InlineData("--model m.onnx --class 1 --out a.png --steps 1001", "--steps must be an integer in 1..1000,")]
    [InlineData("--model m.onnx --class 1 --out a.png --seed -1", "--seed must be an integer in 0..9223372036854775807")]
    [InlineData("--model m.onnx --class 1 --out a.png --sampler euler", "--sampler must be one of ddim, ddpm, ddpm-small, dpmpp-2m")]
    [InlineData("--model m.onnx --class 1 --out a.png --schedule sigmoid@3,1,1", "s must be less than e")]
    [InlineData("--model m.onnx --class 1 --out a.png --guidance -2", "--guidance must be a number from 0 to 20")]
    [InlineData("--model m.onnx --class 1 --out a.png --guidance 21", "--guidance must be a number from 0 to 20")]
    [InlineData("--model m.onnx --class 1 --out a.png --guidance-interval 0.8,0.2", "--guidance-interval: '0.8,0.2' must have 0 <= low < high <= 1")]
    [InlineData("--model m.onnx --class 1 --out a.png --guidance-interval 0.5", "--guidance-interval: '0.5' is not two numbers 'low,high'")]
    [InlineData("--model m.onnx --class 1 --out a.jpg", "--out must name a .png file")]
    [InlineData("--model m.onnx --class 1 --out a.png --provider tpu", "--provider must be cpu, cuda or auto")]
    [InlineData("--model m.onnx --class 1 --out a.png --bogus 1", "unknown argument '--bogus'")]
    [InlineData("--model m.onnx --class 1 --out", "--out needs a value")]
    public void Bad_arguments_get_an_error_naming_the_flag(string line, string expected)
    {
        Assert.False(CliArguments.TryParse(line.Split(' '), out var parsed, out var error));
        Assert.Null(parsed);
        Assert.Contains(expected, error);
    }

    [Fact]
    public void Guidance_is_unset_unless_given_so_the_model_default_can_apply()
    {
        Assert.True(CliArguments.TryParse(["--model", "m.onnx", "--class", "1", "--out", "a.png"], out var parsed, out _));
        Assert.Null(parsed!.Guidance);
        Assert.True(CliArguments.TryParse(["--model", "m.onnx", "--class", "1", "--out", "a.png", "--guidance", "0"], out parsed, out _));
        Assert.Equal(0f, parsed!.Guidance);
        Assert.Contains("rin.default_guidance", CliArguments.Usage);
    }

    [Fact]
    public void Cli_without_guidance_samples_with_the_model_default_and_guidance_0_overrides_it()
    {
        using var folder = new TempFolder();
        var guided = folder.Write("guided.onnx", OnnxModels.WithMetadata(File.ReadAllBytes(Tiny), m =>
        {
            m["rin.default_guidance"] = "3";
            return m;
        }));
        byte[] Sample(string model, string name, params string[] extra) => SamplePng(folder, model, name, extra);

        var byDefault = Sample(guided, "default.png");
        Assert.Equal(Sample(Tiny, "explicit.png", "--guidance", "3"), byDefault);
        Assert.NotEqual(Sample(guided, "unguided.png", "--guidance", "0"), byDefault);
        Assert.Equal(Sample(Tiny, "plain.png"), Sample(guided, "unguided-again.png", "--guidance", "0"));
    }

    /// <summary>Class 4, seed 9, 3 steps (t = 1, 2/3, 1/3) into the folder; the CLI must exit 0; the PNG's bytes.</summary>
    private static byte[] SamplePng(TempFolder folder, string model, string name, string[] extra)
    {
        var output = Path.Combine(folder.Path, name);
        Assert.Equal(0, RunCli(["--model", model, "--class", "4", "--steps", "3", "--seed", "9", "--out", output, .. extra]));
        return File.ReadAllBytes(output);
    }

    [Fact]
    public void Cli_takes_the_models_guidance_interval_and_guidance_interval_overrides_it()
    {
        using var folder = new TempFolder();
        var limited = folder.Write("limited.onnx", OnnxModels.WithMetadata(File.ReadAllBytes(Tiny), m =>
        {
            m["rin.default_guidance"] = "3";
            m["rin.guidance_interval"] = "0,0.5";
            return m;
        }));
        byte[] Sample(string model, string name, params string[] extra) => SamplePng(folder, model, name, extra);

        var byModel = Sample(limited, "by-model.png");
        Assert.Equal(Sample(Tiny, "named.png", "--guidance", "3", "--guidance-interval", "0,0.5"), byModel);
        Assert.NotEqual(Sample(Tiny, "whole.png", "--guidance", "3"), byModel);
        Assert.Equal(Sample(Tiny, "whole-again.png", "--guidance", "3"), Sample(limited, "overridden.png", "--guidance-interval", "0,1"));
    }

    [Fact]
    public void Class_is_an_id_a_name_or_all()
    {
        var spec = new ModelSpec("m", 8, 1, 3, ["T-shirt", "Trouser", "Bag"], null, Prediction.Eps, 1f, true, 2, 2);
        CliArguments Parse(string cls) =>
            CliArguments.TryParse(["--model", "m.onnx", "--class", cls, "--out", "a.png"], out var parsed, out _) ? parsed! : throw new InvalidOperationException();

        Assert.True(Parse("2").TryResolveClasses(spec, out var classes, out _));
        Assert.Equal([2], classes);
        Assert.True(Parse("trouser").TryResolveClasses(spec, out classes, out _));
        Assert.Equal([1], classes);
        Assert.True(Parse("all").TryResolveClasses(spec, out classes, out _));
        Assert.Equal([0, 1, 2], classes);
        Assert.False(Parse("3").TryResolveClasses(spec, out _, out var error));
        Assert.Equal("--class '3' is not a class of model 'm': an id from 0 to 2 or a name: T-shirt, Trouser, Bag, or all", error);
    }

    [Fact]
    public void Class_of_a_glyph_model_is_also_a_character_or_code_point_and_errors_stay_short()
    {
        string[] names = [.. Enumerable.Range(0x21, 0x7E - 0x21 + 1).Concat(Enumerable.Range(0x100, 0x80)).Select(c => $"{(char)c} (U+{c:X4})")];
        var spec = new ModelSpec("glyph-8", 8, 1, names.Length, names, null, Prediction.Eps, 1f, true, 2, 2);
        int[] Resolve(string cls)
        {
            Assert.True(CliArguments.TryParse(["--model", "m.onnx", "--class", cls, "--out", "a.png"], out var parsed, out _));
            Assert.True(parsed!.TryResolveClasses(spec, out var classes, out var error), error);
            return classes;
        }

        Assert.Equal([32], Resolve("A"));
        Assert.Equal([64], Resolve("a"));
        Assert.Equal([94 + 0x33], Resolve("U+0133"));
        Assert.Equal([1], Resolve("1"));
        Assert.True(CliArguments.TryParse(["--model", "m.onnx", "--class", "nope", "--out", "a.png"], out var bad, out _));
        Assert.False(bad!.TryResolveClasses(spec, out _, out var message));
        Assert.Equal(
            $"--class 'nope' is not a class of model 'glyph-8': an id from 0 to {names.Length - 1}, a class name such as 'A (U+0041)', its character, or U+XXXX, or all",
            message);
    }

    [Fact]
    public void Cli_writes_one_grayscale_png_per_image_from_a_real_model()
    {
        using var folder = new TempFolder();
        var output = Path.Combine(folder.Path, "x.png");
        var code = RunCli("--model", Tiny, "--class", "7", "--steps", "4", "--seed", "1", "--n", "2", "--guidance", "1", "--out", output);
        Assert.Equal(0, code);
        foreach (var file in new[] { "x-0.png", "x-1.png" })
        {
            using var image = Image.Load<L8>(Path.Combine(folder.Path, file));
            Assert.Equal((16, 16), (image.Width, image.Height));
        }

        Assert.NotEqual(File.ReadAllBytes(Path.Combine(folder.Path, "x-0.png")), File.ReadAllBytes(Path.Combine(folder.Path, "x-1.png")));
    }

    [Fact]
    public void Cli_exits_non_zero_for_a_bad_model_file()
    {
        using var folder = new TempFolder();
        var code = RunCli("--model", folder.Write("bad.onnx", [1, 2, 3]), "--class", "1", "--out", Path.Combine(folder.Path, "x.png"));
        Assert.Equal(1, code);
        Assert.False(File.Exists(Path.Combine(folder.Path, "x.png")));
    }

    [Fact]
    public void Cli_png_carries_the_service_metadata_and_a_missing_output_folder_is_created()
    {
        using var folder = new TempFolder();
        var output = Path.Combine(folder.Path, "not", "yet", "s.png");
        Assert.Equal(0, RunCli("--model", Tiny, "--class", "7", "--steps", "3", "--seed", "5", "--out", output));

        using var cli = Image.Load(output);
        var written = cli.Metadata.GetPngMetadata().TextData.ToDictionary(t => t.Keyword, t => t.Value);
        var pixels = new GeneratedImage(16, 16, 1, new byte[16 * 16]);
        var job = new JobSpec("tiny", 3, "ddim", "cosine", 0, 7, 5, 1, "png", null);
        using var service = Image.Load(ImageEncoder.Encode(pixels, "png", job, 0, ["a", "b"]));
        var serviceKeys = service.Metadata.GetPngMetadata().TextData.Select(t => t.Keyword).Order(StringComparer.Ordinal);
        Assert.Equal(serviceKeys, written.Keys.Order(StringComparer.Ordinal));
        Assert.Equal(("5", "3", "ddim", "cosine", "RinServe"), (written["seed"], written["steps"], written["sampler"], written["schedule"], written["Software"]));
        Assert.StartsWith("7 ", written["class"], StringComparison.Ordinal);
    }

    [Fact]
    public void Cli_exits_2_when_the_output_folder_cannot_be_created()
    {
        using var folder = new TempFolder();
        var file = folder.Write("a-file", [1]);
        Assert.Equal(2, RunCli("--model", Tiny, "--class", "7", "--steps", "2", "--out", Path.Combine(file, "s.png")));
    }
}
