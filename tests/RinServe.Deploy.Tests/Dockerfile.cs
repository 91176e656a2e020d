using System.Text;

namespace RinServe.Deploy.Tests;

/// <summary>One Dockerfile instruction with its line continuations joined; comments dropped.</summary>
internal sealed record Instruction(string Keyword, string Arguments)
{
    public override string ToString() => $"{Keyword} {Arguments}";
}

/// <summary>A build stage: <c>FROM base AS name</c> and what follows it up to the next FROM.</summary>
internal sealed record Stage(string Name, string BaseImage, IReadOnlyList<Instruction> Instructions)
{
    public IEnumerable<Instruction> All(string keyword) => Instructions.Where(i => i.Keyword == keyword);

    /// <summary>ENV values, both the <c>KEY=value KEY2=value2</c> and the old <c>KEY value</c> form.</summary>
    public IReadOnlyDictionary<string, string> Env
    {
        get
        {
            var env = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var args in All("ENV").Select(i => i.Arguments))
            {
                if (!args.Split(' ', 2)[0].Contains('=', StringComparison.Ordinal))
                {
                    var parts = args.Split(' ', 2, StringSplitOptions.TrimEntries);
                    env[parts[0]] = parts[1];
                    continue;
                }
                foreach (var pair in args.Split(' ', StringSplitOptions.RemoveEmptyEntries))
                {
                    var kv = pair.Split('=', 2);
                    env[kv[0]] = kv[1].Trim('"');
                }
            }
            return env;
        }
    }
}

/// <summary>The repo's Dockerfile, parsed just enough to check it against the repo and the manifests.</summary>
internal sealed class Dockerfile
{
    public IReadOnlyList<Instruction> Global { get; }
    public IReadOnlyList<Stage> Stages { get; }

    private Dockerfile(IReadOnlyList<Instruction> global, IReadOnlyList<Stage> stages)
    {
        Global = global;
        Stages = stages;
    }

    public static Dockerfile InRepo { get; } = Parse(Repo.Read("Dockerfile"));

    /// <summary>The default of each global <c>ARG NAME=default</c> (the ones a <c>FROM</c> may use).</summary>
    public IReadOnlyDictionary<string, string> GlobalArgs =>
        Global.Where(i => i.Keyword == "ARG" && i.Arguments.Contains('=', StringComparison.Ordinal))
            .Select(i => i.Arguments.Split('=', 2))
            .ToDictionary(kv => kv[0], kv => kv[1].Trim('"'), StringComparer.Ordinal);

    /// <summary>A stage's base with <c>${ARG}</c> replaced by the ARG's default: the image a plain build pulls.</summary>
    public string DefaultBaseImage(Stage stage) =>
        System.Text.RegularExpressions.Regex.Replace(stage.BaseImage, @"\$\{(\w+)\}|\$(\w+)", m =>
        {
            var name = m.Groups[1].Success ? m.Groups[1].Value : m.Groups[2].Value;
            return GlobalArgs.TryGetValue(name, out var value) ? value : throw new Xunit.Sdk.XunitException($"FROM {stage.BaseImage}: no global ARG {name} with a default");
        });

    public Stage Stage(string name) =>
        Stages.SingleOrDefault(s => s.Name == name) ?? throw new Xunit.Sdk.XunitException(
            $"Dockerfile has no stage '{name}' (stages: {string.Join(", ", Stages.Select(s => s.Name))})");

    /// <summary>The stages a target is built from: itself, its FROM chain and every <c>COPY --from</c> stage.</summary>
    public IReadOnlyList<Stage> Chain(string target)
    {
        var seen = new List<Stage>();
        void Visit(string name)
        {
            var stage = Stages.SingleOrDefault(s => s.Name == name);
            if (stage is null || seen.Contains(stage))
            {
                return;
            }
            seen.Add(stage);
            Visit(stage.BaseImage);
            foreach (var copy in stage.All("COPY"))
            {
                if (CopyFrom(copy) is { } from)
                {
                    Visit(from);
                }
            }
        }
        Visit(target);
        return seen;
    }

    public static string? CopyFrom(Instruction copy) =>
        copy.Arguments.Split(' ', StringSplitOptions.RemoveEmptyEntries)
            .FirstOrDefault(a => a.StartsWith("--from=", StringComparison.Ordinal))?["--from=".Length..];

    /// <summary>The source paths of a COPY (everything but flags and the last, the destination).</summary>
    public static IReadOnlyList<string> CopySources(Instruction copy)
    {
        var parts = copy.Arguments.Split(' ', StringSplitOptions.RemoveEmptyEntries).Where(a => !a.StartsWith("--", StringComparison.Ordinal)).ToArray();
        return parts[..^1];
    }

    public static string CopyDestination(Instruction copy) =>
        copy.Arguments.Split(' ', StringSplitOptions.RemoveEmptyEntries)[^1];

    public static Dockerfile Parse(string text)
    {
        var instructions = new List<Instruction>();
        var pending = new StringBuilder();
        foreach (var raw in text.Split('\n'))
        {
            var line = raw.TrimEnd('\r');
            if (line.TrimStart().StartsWith('#'))
            {
                continue;
            }
            var continues = line.EndsWith('\\');
            pending.Append(continues ? line[..^1] : line).Append(' ');
            if (continues)
            {
                continue;
            }
            var joined = string.Join(' ', pending.ToString().Split(' ', StringSplitOptions.RemoveEmptyEntries));
            pending.Clear();
            if (joined.Length > 0)
            {
                var parts = joined.Split(' ', 2);
                instructions.Add(new Instruction(parts[0].ToUpperInvariant(), parts.Length > 1 ? parts[1] : ""));
            }
        }

        var global = instructions.TakeWhile(i => i.Keyword != "FROM").ToArray();
        var stages = new List<Stage>();
        var rest = instructions.Skip(global.Length).ToList();
        while (rest.Count > 0)
        {
            var from = rest[0].Arguments.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            var body = rest.Skip(1).TakeWhile(i => i.Keyword != "FROM").ToArray();
            var name = from.Length >= 3 && from[^2].Equals("AS", StringComparison.OrdinalIgnoreCase) ? from[^1] : $"#{stages.Count}";
            stages.Add(new Stage(name, from.First(a => !a.StartsWith("--", StringComparison.Ordinal)), body));
            rest = rest.Skip(1 + body.Length).ToList();
        }
        return new Dockerfile(global, stages);
    }
}
