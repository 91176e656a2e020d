using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Console;
using RinServe.Cli;
using RinServe.Diffusion;
using RinServe.Onnx;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

if (args.Length == 0 || args.Contains("--help") || args.Contains("-h"))
{
    Console.Error.WriteLine(CliArguments.Usage);
    return args.Length == 0 ? 2 : 0;
}

if (!CliArguments.TryParse(args, out var cli, out var argumentError))
{
    Console.Error.WriteLine($"error: {argumentError}");
    Console.Error.WriteLine(CliArguments.Usage);
    return 2;
}

// Logs go to stderr so stdout carries only the written file names.
using var loggerFactory = LoggerFactory.Create(b => b
    .AddSimpleConsole(o => o.SingleLine = true)
    .AddFilter("rinserve", LogLevel.Information)
    .SetMinimumLevel(LogLevel.Warning)
    .AddConsole(o => o.LogToStandardErrorThreshold = LogLevel.Trace));
var logger = loggerFactory.CreateLogger("rinserve");
LoadedModel model;
try
{
    model = ModelLoader.Load(
        cli!.Model, new OnnxModelOptions { ExecutionProvider = cli.Provider, IntraOpThreads = cli.Threads }, logger);
}
catch (Exception e) when (e is ModelContractException or InvalidOperationException)
{
    Console.Error.WriteLine($"error: {e.Message}");
    return 1;
}

using (model)
{
    var spec = model.Spec;
    if (!cli.TryResolveClasses(spec, out var classes, out var classError))
    {
        Console.Error.WriteLine($"error: {classError}");
        return 2;
    }

    // Without --guidance the model's own default applies (0 for models without rin.default_guidance).
    var guidance = cli.Guidance ?? spec.DefaultGuidance;
    if (guidance > 0 && !spec.SupportsGuidance)
    {
        Console.Error.WriteLine($"error: --guidance needs a model with rin.null_class; '{spec.Name}' has none");
        return 2;
    }

    var requests = classes.SelectMany(c => Enumerable.Range(0, cli.Count).Select(i => new ImageRequest(c, (ulong)(cli.Seed + i)))).ToArray();
    var settings = new SamplerSettings(cli.Steps, cli.Sampler, cli.Schedule, guidance);
    var stopwatch = Stopwatch.StartNew();
    var images = new RinSampler(model.Denoiser).Generate(settings, requests, p => ProgressBar.Draw(p, stopwatch.Elapsed));
    Console.Error.WriteLine();

    var stem = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(cli.Out))!, Path.GetFileNameWithoutExtension(cli.Out));
    for (var k = 0; k < images.Count; k++)
    {
        var suffix = (classes.Length > 1 ? $"-c{requests[k].ClassId}" : string.Empty) + (cli.Count > 1 ? $"-{k % cli.Count}" : string.Empty);
        var file = stem + suffix + ".png";
        SavePng(images[k], file);
        Console.WriteLine($"{file}  class {requests[k].ClassId} ({spec.ClassNames[(int)requests[k].ClassId]}), seed {requests[k].Seed}");
    }

    Console.Error.WriteLine(
        $"{images.Count} image(s), {cli.Steps} steps, {cli.Sampler}, {cli.Schedule}, guidance {guidance} on {model.ExecutionProvider} in {stopwatch.Elapsed.TotalSeconds:F1} s");
}

return 0;

static void SavePng(GeneratedImage image, string file)
{
    // Grayscale models give L8 PNGs, colour models Rgb24; pixels are already HWC bytes.
    using Image png = image.Channels switch
    {
        1 => Image.LoadPixelData<L8>(image.Pixels, image.Width, image.Height),
        3 => Image.LoadPixelData<Rgb24>(image.Pixels, image.Width, image.Height),
        _ => throw new NotSupportedException($"{image.Channels}-channel images have no PNG mapping here"),
    };
    png.SaveAsPng(file);
}
