using System.Globalization;
using RinServe.Diffusion;

namespace RinServe.Cli;

/// <summary>The command line, parsed and checked; every error says which flag and what is allowed.</summary>
/// <param name="Guidance">--guidance; null when not given, so the model's default guidance applies.</param>
internal sealed record CliArguments(
    string Model,
    string Class,
    int Steps,
    long Seed,
    string Out,
    SamplerKind Sampler,
    string Schedule,
    float? Guidance,
    int Count,
    string Provider,
    int Threads)
{
    public const string Usage = """
        usage: rinserve --model FILE.onnx --class ID|NAME|CHARACTER|U+XXXX|all --out FILE.png [options]
          --steps N          sampling steps (default 50)
          --seed S           seed, 0..9223372036854775807 (default 0); image i uses S+i
          --sampler NAME     ddim | ddpm | ddpm-small (default ddim)
          --schedule TEXT    cosine | linear | cosine@s,e,tau | sigmoid@s,e,tau (default cosine)
          --guidance W       classifier-free guidance weight >= 0 (default: the model's rin.default_guidance,
                             else 0 = unguided; > 0 needs rin.null_class)
          --n COUNT          images per class (default 1); files get -i (and -c<class>) suffixes
          --provider NAME    cpu | cuda | auto (default cpu)
          --threads N        ONNX Runtime intra-op threads (default 0 = ORT default)
        """;

    public static bool TryParse(string[] args, out CliArguments? parsed, out string? error)
    {
        parsed = null;
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        var known = new HashSet<string>(StringComparer.Ordinal)
        {
            "--model", "--class", "--steps", "--seed", "--out", "--sampler", "--schedule", "--guidance", "--n", "--provider", "--threads",
        };
        for (var i = 0; i < args.Length; i++)
        {
            if (!known.Contains(args[i]))
            {
                error = $"unknown argument '{args[i]}'";
                return false;
            }

            if (i + 1 >= args.Length)
            {
                error = $"{args[i]} needs a value";
                return false;
            }

            values[args[i]] = args[++i];
        }

        foreach (var required in new[] { "--model", "--class", "--out" })
        {
            if (!values.ContainsKey(required))
            {
                error = $"{required} is required";
                return false;
            }
        }

        string Get(string key, string fallback) => values.TryGetValue(key, out var v) ? v : fallback;

        if (!int.TryParse(Get("--steps", "50"), NumberStyles.None, CultureInfo.InvariantCulture, out var steps) || steps < 1 || steps > 10_000)
        {
            error = $"--steps must be an integer in 1..10000, got '{Get("--steps", "")}'";
            return false;
        }

        if (!long.TryParse(Get("--seed", "0"), NumberStyles.None, CultureInfo.InvariantCulture, out var seed))
        {
            error = $"--seed must be an integer in 0..{long.MaxValue}, got '{Get("--seed", "")}'";
            return false;
        }

        if (!SamplerNames.TryParse(Get("--sampler", "ddim"), out var sampler))
        {
            error = $"--sampler must be ddim, ddpm or ddpm-small, got '{Get("--sampler", "")}'";
            return false;
        }

        var schedule = Get("--schedule", "cosine");
        if (!Schedules.TryParse(schedule, out _, out var scheduleError))
        {
            error = $"--schedule: {scheduleError}";
            return false;
        }

        float? guidance = null;
        if (values.TryGetValue("--guidance", out var guidanceText))
        {
            if (!float.TryParse(guidanceText, NumberStyles.Float, CultureInfo.InvariantCulture, out var weight)
                || !float.IsFinite(weight) || weight < 0)
            {
                error = $"--guidance must be a number >= 0, got '{guidanceText}'";
                return false;
            }

            guidance = weight;
        }

        if (!int.TryParse(Get("--n", "1"), NumberStyles.None, CultureInfo.InvariantCulture, out var count) || count < 1 || count > 256)
        {
            error = $"--n must be an integer in 1..256, got '{Get("--n", "")}'";
            return false;
        }

        if (!int.TryParse(Get("--threads", "0"), NumberStyles.None, CultureInfo.InvariantCulture, out var threads))
        {
            error = $"--threads must be an integer >= 0, got '{Get("--threads", "")}'";
            return false;
        }

        var provider = Get("--provider", "cpu").ToLowerInvariant();
        if (provider is not ("cpu" or "cuda" or "auto"))
        {
            error = $"--provider must be cpu, cuda or auto, got '{provider}'";
            return false;
        }

        if (!values["--out"].EndsWith(".png", StringComparison.OrdinalIgnoreCase))
        {
            error = $"--out must name a .png file, got '{values["--out"]}'";
            return false;
        }

        if (seed > long.MaxValue - count)
        {
            error = $"--seed plus --n must stay within 0..{long.MaxValue}";
            return false;
        }

        parsed = new CliArguments(
            values["--model"], values["--class"], steps, seed, values["--out"], sampler, schedule, guidance, count, provider, threads);
        error = null;
        return true;
    }

    /// <summary>Class ids asked for: a number, a class of the model by name, character or code point, or all of them.</summary>
    public bool TryResolveClasses(ModelSpec spec, out int[] classes, out string? error)
    {
        error = null;
        if (Class.Equals("all", StringComparison.OrdinalIgnoreCase))
        {
            classes = Enumerable.Range(0, spec.NumClasses).ToArray();
            return true;
        }

        if (spec.FindClass(Class, out var id) == ClassLookup.Found)
        {
            classes = [id];
            return true;
        }

        classes = [];
        error = $"--class '{UserText.Shorten(Class)}' is not a class of model '{spec.Name}': {spec.DescribeClasses()}, or all";
        return false;
    }
}
