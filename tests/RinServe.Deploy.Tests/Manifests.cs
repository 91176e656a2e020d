using YamlDotNet.RepresentationModel;

namespace RinServe.Deploy.Tests;

/// <summary>One Kubernetes object (or kustomization, or patch) read from a file under k8s/.</summary>
internal sealed record K8sObject(string File, YamlMappingNode Node)
{
    public string Kind => Node.Str("kind") ?? "";
    public string Name => Node.Str("metadata.name") ?? "";
    public IReadOnlyDictionary<string, string> Labels => Node.StrMap("metadata.labels");

    /// <summary>The pod template of a Deployment or StatefulSet.</summary>
    public YamlMappingNode? PodSpec => Node.Get("spec.template.spec") as YamlMappingNode;
    public IReadOnlyDictionary<string, string> PodLabels => Node.StrMap("spec.template.metadata.labels");

    public IEnumerable<YamlMappingNode> Containers =>
        (PodSpec?.Get("containers") as YamlSequenceNode)?.Children.OfType<YamlMappingNode>() ?? [];

    public override string ToString() => $"{Kind}/{Name} ({File})";
}

internal static class Manifests
{
    public const string Base = "k8s/base";
    public const string CpuOnly = "k8s/overlays/cpu-only";

    /// <summary>Every YAML document under k8s/, each with the file it came from (relative to the repo root).</summary>
    public static IReadOnlyList<K8sObject> All => Loaded.Value;

    /// <summary>
    /// The objects <c>kubectl kustomize</c> renders from a kustomization: what <c>kubectl apply -k</c> would send
    /// to a cluster (namespace set, images replaced, patches applied, deleted objects gone).
    /// </summary>
    public static IReadOnlyList<K8sObject> Rendered(string kustomizationDir) => Kustomize.Render(kustomizationDir);

    public static K8sObject One(string kustomizationDir, string kind, string name) =>
        Rendered(kustomizationDir).SingleOrDefault(o => o.Kind == kind && o.Name == name)
        ?? throw new Xunit.Sdk.XunitException($"kubectl kustomize {kustomizationDir} renders no {kind}/{name}");

    public static YamlMappingNode Kustomization(string dir) =>
        Load(Path.Combine(dir, "kustomization.yaml")).Single().Node;

    public static IEnumerable<string> ResourceFiles(string kustomizationDir)
    {
        foreach (var entry in Kustomization(kustomizationDir).Seq("resources"))
        {
            var relative = Path.GetRelativePath(Repo.Root, Path.GetFullPath(Path.Combine(Repo.Root, kustomizationDir, entry)));
            if (Directory.Exists(Repo.PathOf(relative)))
            {
                foreach (var file in ResourceFiles(relative))
                {
                    yield return file;
                }
            }
            else
            {
                yield return relative;
            }
        }
    }

    public static IReadOnlyList<K8sObject> Load(string relativeFile) => Parse(Repo.Read(relativeFile), relativeFile.Replace('\\', '/'));

    /// <summary>The YAML documents of a multi-document text, each tagged with where it came from.</summary>
    public static IReadOnlyList<K8sObject> Parse(string yaml, string source)
    {
        var stream = new YamlStream();
        using (var reader = new StringReader(yaml))
        {
            stream.Load(reader);
        }
        return stream.Documents
            .Select(d => d.RootNode)
            .OfType<YamlMappingNode>()
            .Select(n => new K8sObject(source, n))
            .ToArray();
    }

    private static readonly Lazy<IReadOnlyList<K8sObject>> Loaded = new(() =>
        Directory.EnumerateFiles(Repo.PathOf("k8s"), "*.*", SearchOption.AllDirectories)
            .Where(f => f.EndsWith(".yaml", StringComparison.Ordinal) || f.EndsWith(".yml", StringComparison.Ordinal))
            .Order(StringComparer.Ordinal)
            .SelectMany(f => Load(Path.GetRelativePath(Repo.Root, f)))
            .ToArray());
}

/// <summary>Dotted-path access into YAML ("spec.template.spec"); null where a step is missing.</summary>
internal static class YamlPaths
{
    public static YamlNode? Get(this YamlNode node, string path)
    {
        YamlNode? current = node;
        foreach (var step in path.Split('.'))
        {
            if (current is not YamlMappingNode map || !map.Children.TryGetValue(new YamlScalarNode(step), out current))
            {
                return null;
            }
        }
        return current;
    }

    /// <summary>One key taken literally (keys such as <c>nvidia.com/gpu</c> contain dots).</summary>
    public static YamlNode? Child(this YamlNode node, string key) =>
        node is YamlMappingNode map && map.Children.TryGetValue(new YamlScalarNode(key), out var child) ? child : null;

    public static string? Str(this YamlNode node, string path) => (node.Get(path) as YamlScalarNode)?.Value;

    public static IReadOnlyDictionary<string, string> StrMap(this YamlNode node, string path) =>
        node.Get(path) is YamlMappingNode map
            ? map.Children.ToDictionary(kv => ((YamlScalarNode)kv.Key).Value!, kv => (kv.Value as YamlScalarNode)?.Value ?? "", StringComparer.Ordinal)
            : new Dictionary<string, string>(StringComparer.Ordinal);

    public static IEnumerable<YamlMappingNode> Maps(this YamlNode node, string path) =>
        (node.Get(path) as YamlSequenceNode)?.Children.OfType<YamlMappingNode>() ?? [];

    public static IEnumerable<string> Seq(this YamlNode node, string path) =>
        (node.Get(path) as YamlSequenceNode)?.Children.OfType<YamlScalarNode>().Select(s => s.Value!) ?? [];

    /// <summary>A container's env as name/value; values from a secret or field come back as null.</summary>
    public static IReadOnlyList<(string Name, string? Value)> Env(this YamlMappingNode container) =>
        container.Maps("env").Select(e => (e.Str("name")!, e.Str("value"))).ToArray();
}
