using System.Collections.Concurrent;
using System.Diagnostics;

namespace RinServe.Deploy.Tests;

/// <summary>
/// Renders a kustomization the way <c>kubectl apply -k</c> does, with the real kustomize: <c>kubectl kustomize DIR</c>
/// (or a standalone <c>kustomize build DIR</c>). No cluster is needed or contacted.
/// </summary>
internal static class Kustomize
{
    private static readonly ConcurrentDictionary<string, Lazy<IReadOnlyList<K8sObject>>> Cache = new(StringComparer.Ordinal);

    public static IReadOnlyList<K8sObject> Render(string kustomizationDir) =>
        Cache.GetOrAdd(kustomizationDir, dir => new Lazy<IReadOnlyList<K8sObject>>(() => RenderNow(dir))).Value;

    /// <summary>The command that renders: $KUBECTL, else kubectl on PATH, else kustomize on PATH.</summary>
    public static (string File, string[] Args) Command(string dir)
    {
        var kubectl = Environment.GetEnvironmentVariable("KUBECTL");
        if (!string.IsNullOrEmpty(kubectl))
        {
            return (kubectl, ["kustomize", dir]);
        }
        if (OnPath("kubectl") is { } found)
        {
            return (found, ["kustomize", dir]);
        }
        if (OnPath("kustomize") is { } standalone)
        {
            return (standalone, ["build", dir]);
        }
        throw new Xunit.Sdk.XunitException(
            "neither kubectl nor kustomize is on PATH: the k8s/ checks render the kustomizations with them. " +
            "Install kubectl 1.21+ (kustomize v4+; Debian 12's kubernetes-client 1.20 is too old for the 'patches' field).");
    }

    private static IReadOnlyList<K8sObject> RenderNow(string dir)
    {
        var (file, args) = Command(Repo.PathOf(dir));
        var start = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }
        using var process = Process.Start(start)!;
        var stderr = process.StandardError.ReadToEndAsync();
        var stdout = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        Assert.True(process.ExitCode == 0, $"{file} {string.Join(' ', args)} failed ({process.ExitCode}): {stderr.Result}");
        var objects = Manifests.Parse(stdout, $"kubectl kustomize {dir}");
        Assert.NotEmpty(objects);
        return objects;
    }

    private static string? OnPath(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Select(d => Path.Combine(d, name))
            .FirstOrDefault(File.Exists);
}
