using System.Globalization;
using RinServe.Diffusion;

namespace RinServe.Cli;

/// <summary>The command line, parsed and checked; every error says which flag and what is allowed.</summary>
/// <param name="Guidance">--guidance; null when not given, so the model's default guidance applies.</param>
/// <param name="Steps">--steps; null when not given (<see cref="SamplingDefaults.Resolve"/> picks them with the model).</param>
/// <param name="Sampler">--sampler by its canonical name; null when not given (the model's default sampler).</param>
/// <param name="GuidanceInterval">--guidance-interval; null when not given (the model's <c>rin.guidance_interval</c>, else all steps).</param>
internal sealed record CliArguments(
    string Model,
    string Class,
    int? Steps,
    long Seed,
    string Out,
    string? Sampler,
    string Schedule,
    float? Guidance,
    int Count,
    string Provider,
    int Threads,
    GuidanceInterval? GuidanceInterval = null)
{
    public const string Usage = """
        usage: rinserve --model FILE.onnx --class ID|NAME|CHARACTER|U+XXXX|all --out FILE.png [options]
          --steps N          sampling steps, 1..1000 (default: the model's rin.default_steps with its default
                             sampler, else 50)
          --seed S           seed, 0..9223372036854775807 (default 0); image i uses S+i
          --sampler NAME     ddim | ddpm | ddpm-small | dpmpp-2m (default: the model's rin.default_sampler, else ddim)
          --schedule TEXT    cosine | linear | cosine@s,e,tau | sigmoid@s,e,tau (default cosine)
          --guidance W       classifier-free guidance weight, 0..20 (default: the model's rin.default_guidance,
                             else 0 = unguided; > 0 needs rin.null_class)
          --guidance-interval LOW,HIGH
                             guide only the steps whose t (1 = noise, 0 = image) is in [LOW, HIGH], 0 <= LOW < HIGH <= 1
                             (default: the model's rin.guidance_interval, else every step)
          --n COUNT          images per class, 1..256 (default 1); files get -i (and -c<class>) suffixes
          --provider NAME    cpu | cuda | auto (default cpu)
          --threads N        ONNX Runtime intra-op threads (default 0 = ORT default)
        """;

    public static bool TryParse(string[] args, out CliArguments? parsed, out string? error)
    {
        parsed = null;
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        var known = new HashSet<string>(StringComparer.Ordinal)
        {
            "--model", "--class", "--steps", "--seed", "--out", "--sampler", "--schedule", "--guidance", "--guidance-interval", "--n",
            "--provider", "--threads",
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

        int? steps = null;
        if (values.TryGetValue("--steps", out var stepsText))
        {
            if (!int.TryParse(stepsText, NumberStyles.None, CultureInfo.InvariantCulture, out var parsedSteps)
                || parsedSteps < 1 || parsedSteps > SamplingDefaults.MaxSteps)
            {
                error = $"--steps must be an integer in 1..{SamplingDefaults.MaxSteps}, got '{stepsText}'";
                return false;
            }

            steps = parsedSteps;
        }

        if (!long.TryParse(Get("--seed", "0"), NumberStyles.None, CultureInfo.InvariantCulture, out var seed))
        {
            error = $"--seed must be an integer in 0..{long.MaxValue}, got '{Get("--seed", "")}'";
            return false;
        }

        string? sampler = null;
        if (values.TryGetValue("--sampler", out var samplerText))
        {
            if (!Samplers.TryGet(samplerText, out var parsedSampler))
            {
                error = $"--sampler must be one of {string.Join(", ", Samplers.Names)}, got '{samplerText}'";
                return false;
            }

            sampler = parsedSampler.Name;
        }

        var schedule = Get("--schedule", SamplingDefaults.Schedule);
        if (!Schedules.TryParse(schedule, out _, out var scheduleError))
        {
            error = $"--schedule: {scheduleError}";
            return false;
        }

        float? guidance = null;
        if (values.TryGetValue("--guidance", out var guidanceText))
        {
            if (!float.TryParse(guidanceText, NumberStyles.Float, CultureInfo.InvariantCulture, out var weight)
                || !float.IsFinite(weight) || weight < 0 || weight > SamplingDefaults.MaxGuidance)
            {
                error = $"--guidance must be a number from 0 to {SamplingDefaults.MaxGuidance}, got '{guidanceText}'";
                return false;
            }

            guidance = weight;
        }

        GuidanceInterval? interval = null;
        if (values.TryGetValue("--guidance-interval", out var intervalText))
        {
            if (!RinServe.Diffusion.GuidanceInterval.TryParse(intervalText, out var parsedInterval, out var intervalError))
            {
                error = $"--guidance-interval: {intervalError}";
                return false;
            }

            interval = parsedInterval;
        }

        if (!int.TryParse(Get("--n", "1"), NumberStyles.None, CultureInfo.InvariantCulture, out var count) || count < 1 || count > SamplingDefaults.MaxImages)
        {
            error = $"--n must be an integer in 1..{SamplingDefaults.MaxImages}, got '{Get("--n", "")}'";
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
            values["--model"], values["--class"], steps, seed, values["--out"], sampler, schedule, guidance, count, provider, threads, interval);
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
