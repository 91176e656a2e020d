using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging.Abstractions;
using RinServe.Onnx;

namespace RinServe.Deploy.Tests;

/// <summary>The repository the tests check: its root, the app's routes and the models that ship.</summary>
internal static partial class Repo
{
    public static readonly string Root = FindRoot();

    public static string PathOf(string relative) => Path.GetFullPath(Path.Combine(Root, relative));

    public static string Read(string relative) => File.ReadAllText(PathOf(relative));

    /// <summary>Literal routes the WebApi maps (<c>MapGet("/x")</c>, <c>MapHealthChecks("/healthz/live")</c>, ...).</summary>
    public static IReadOnlySet<string> AppRoutes => Routes.Value;

    /// <summary><c>rin.name</c> of each model in models/, read the way the app reads them (its registry, CPU, no warm-up).</summary>
    public static IReadOnlyList<string> ShippedModelNames => ModelNames.Value;

    private static readonly Lazy<IReadOnlySet<string>> Routes = new(() =>
        Directory.EnumerateFiles(PathOf("src/RinServe.WebApi"), "*.cs", SearchOption.AllDirectories)
            .Where(f => !f.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}", StringComparison.Ordinal))
            .SelectMany(f => MapCall().Matches(File.ReadAllText(f)).Select(m => m.Groups["route"].Value))
            .ToHashSet(StringComparer.Ordinal));

    private static readonly Lazy<IReadOnlyList<string>> ModelNames = new(() =>
    {
        var folder = PathOf("models");
        Assert.True(Directory.Exists(folder) && Directory.GetFiles(folder, "*.onnx").Length > 0,
            $"models/ holds no *.onnx: the images copy it and the app does not start without a model ({folder})");
        var options = new OnnxModelOptions { ExecutionProvider = "cpu", WarmUp = false, IntraOpThreads = 1, InterOpThreads = 1 };
        using var registry = ModelRegistry.LoadFolder(folder, options, NullLoggerFactory.Instance);
        return registry.Models.Select(m => m.Spec.Name).Order(StringComparer.Ordinal).ToArray();
    });

    [GeneratedRegex("""\.Map\w*\(\s*"(?<route>/[^"]*)"\s*[,)]""")]
    private static partial Regex MapCall();

    private static string FindRoot() => Testing.TestPaths.RepoRoot;
}
