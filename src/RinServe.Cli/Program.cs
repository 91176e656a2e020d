using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Console;
using RinServe.Cli;
using RinServe.Diffusion;
using RinServe.Onnx;
using RinServe.Jobs;
using RinServe.Worker;

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

    // A folder that does not exist yet is created, as users expect of --out; before sampling, so a bad path fails at once.
    var folder = Path.GetDirectoryName(Path.GetFullPath(cli.Out))!;
    try
    {
        Directory.CreateDirectory(folder);
    }
    catch (Exception e) when (e is IOException or UnauthorizedAccessException)
    {
        Console.Error.WriteLine($"error: --out: cannot create the folder '{folder}': {e.Message}");
        return 2;
    }

    var (samplerName, steps) = SamplingDefaults.Resolve(spec, cli.Sampler, cli.Steps);
    if (!Schedules.TryCheckSteps(Schedules.Parse(cli.Schedule), steps, out var stepsError))
    {
        Console.Error.WriteLine($"error: --schedule: {stepsError}");
        return 2;
    }

    var requests = classes.SelectMany(c => Enumerable.Range(0, cli.Count).Select(i => new ImageRequest(c, (ulong)(cli.Seed + i)))).ToArray();
    var interval = cli.GuidanceInterval ?? spec.GuidanceInterval;
    var settings = new SamplerSettings(steps, samplerName, cli.Schedule, guidance) { GuidanceInterval = interval };
    var stopwatch = Stopwatch.StartNew();
    var images = new RinSampler(model.Denoiser).Generate(settings, requests, p => ProgressBar.Draw(p, stopwatch.Elapsed));
    Console.Error.WriteLine();

    var stem = Path.Combine(folder, Path.GetFileNameWithoutExtension(cli.Out));
    for (var k = 0; k < images.Count; k++)
    {
        var suffix = (classes.Length > 1 ? $"-c{requests[k].ClassId}" : string.Empty) + (cli.Count > 1 ? $"-{k % cli.Count}" : string.Empty);
        var file = stem + suffix + ".png";
        // The service's encoder: the PNG carries the same tEXt metadata (seed, model, steps, ...) as one from the API.
        var job = new JobSpec(spec.Name, steps, samplerName, cli.Schedule, guidance, requests[k].ClassId, (ulong)cli.Seed, cli.Count, "png", null);
        File.WriteAllBytes(file, ImageEncoder.Encode(images[k], "png", job, k % cli.Count, spec.ClassNames));
        Console.WriteLine($"{file}  class {requests[k].ClassId} ({spec.ClassNames[(int)requests[k].ClassId]}), seed {requests[k].Seed}");
    }

    Console.Error.WriteLine(
        $"{images.Count} image(s), {steps} steps, {samplerName}, {cli.Schedule}, guidance {guidance}{(interval.IsWhole ? string.Empty : $" on t in [{interval}]")} on {model.ExecutionProvider} in {stopwatch.Elapsed.TotalSeconds:F1} s");
}

return 0;
