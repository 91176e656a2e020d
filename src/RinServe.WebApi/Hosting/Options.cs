using System.ComponentModel.DataAnnotations;

using RinServe.Diffusion;

namespace RinServe.WebApi.Hosting;

/// <summary>Which parts of the service this process runs.</summary>
public enum ServiceRole
{
    /// <summary>API and worker in one process (the default; the only role that works without Redis).</summary>
    All,
    /// <summary>HTTP API only; jobs go to Redis for workers elsewhere.</summary>
    Api,
    /// <summary>Batching worker only; serves just /healthz and /metrics over HTTP.</summary>
    Worker,
}

/// <summary>Deployment shape (section <c>RinServe</c>).</summary>
public sealed class RinServeOptions : IValidatableObject
{
    public const string Section = "RinServe";

    /// <summary><c>all</c> (default), <c>api</c> or <c>worker</c>. <c>api</c> and <c>worker</c> need <see cref="Redis"/>.</summary>
    public ServiceRole Role { get; set; } = ServiceRole.All;

    /// <summary>StackExchange.Redis connection string, e.g. <c>localhost:6379</c>; empty = the in-process queue.</summary>
    public string Redis { get; set; } = "";

    /// <summary>Folder of <c>*.onnx</c> models, relative to the content root (the repo root in development).</summary>
    [Required(AllowEmptyStrings = false)]
    public string ModelsPath { get; set; } = "models";

    /// <summary>
    /// The model family (<c>rin.family</c>, else the name up to its first '-') whose model a request gets when it names only a
    /// <c>res</c> that several models share. <c>model=</c> picks another.
    /// </summary>
    [Required(AllowEmptyStrings = false)]
    [MaxLength(100)]
    public string DefaultFamily { get; set; } = "glyph";

    /// <summary>
    /// The load balancers whose <c>X-Forwarded-For</c> and <c>X-Forwarded-Proto</c> this service believes: addresses or
    /// CIDR networks (<c>10.0.0.0/8</c>). A request that comes from one of them is the client the header's last entry names
    /// (the balancer's own addition: ForwardLimit 1), for the rate limit, logs and the scheme; from anywhere else the
    /// headers are ignored. Empty (the default): nobody is believed, and the client is the connection's peer.
    /// </summary>
    public string[] TrustedProxies { get; set; } = [];

    /// <summary>Largest accepted request body in bytes; larger bodies get 413.</summary>
    [Range(1024, 10 * 1024 * 1024)]
    public long MaxRequestBodyBytes { get; set; } = 64 * 1024;

    /// <summary>
    /// In-process queue only: on SIGTERM, how long the instance keeps running and serving the jobs it accepted before it
    /// stops (it takes no new ones meanwhile). Keep it below the host's shutdown timeout (DOTNET_SHUTDOWNTIMEOUTSECONDS, 30 s).
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00", "01:00:00")]
    public TimeSpan ShutdownDrainTimeout { get; set; } = TimeSpan.FromSeconds(20);

    /// <summary>In-process queue only: after the drain finished its jobs, how long their results stay fetchable.</summary>
    [Range(typeof(TimeSpan), "00:00:00", "00:10:00")]
    public TimeSpan ShutdownResultGrace { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary><see cref="TrustedProxies"/> as networks (an address alone is its own /32 or /128).</summary>
    public IEnumerable<System.Net.IPNetwork> TrustedNetworks() => TrustedProxies.Select(p => System.Net.IPNetwork.Parse(AsNetwork(p)));

    private static string AsNetwork(string proxy) =>
        proxy.Contains('/', StringComparison.Ordinal) ? proxy : proxy + (proxy.Contains(':', StringComparison.Ordinal) ? "/128" : "/32");

    public bool ServesApi => Role is ServiceRole.All or ServiceRole.Api;
    public bool RunsWorker => Role is ServiceRole.All or ServiceRole.Worker;

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        foreach (var proxy in TrustedProxies)
        {
            if (!System.Net.IPNetwork.TryParse(AsNetwork(proxy), out _))
            {
                yield return new ValidationResult($"RinServe:TrustedProxies: '{proxy}' is neither an IP address nor a CIDR network", [nameof(TrustedProxies)]);
            }
        }
        if (Role != ServiceRole.All && string.IsNullOrWhiteSpace(Redis))
        {
            yield return new ValidationResult(
                $"RinServe:Role is '{Role.ToString().ToLowerInvariant()}' but RinServe:Redis is empty: separate api and worker processes share jobs through Redis. " +
                "Set RinServe:Redis (e.g. RinServe__Redis=localhost:6379) or use RinServe:Role=all for one process with the in-process queue.",
                [nameof(Redis), nameof(Role)]);
        }
    }
}

/// <summary>Limits and defaults of generation requests (section <c>Sampling</c>).</summary>
public sealed class SamplingOptions : IValidatableObject
{
    public const string Section = "Sampling";

    /// <summary>Sampler steps when a request names none and the model names none (<c>rin.default_steps</c>).</summary>
    [Range(1, SamplingDefaults.StepsCeiling)]
    public int DefaultSteps { get; set; } = SamplingDefaults.Steps;

    /// <summary>Most sampler steps a request may ask for (default <see cref="SamplingDefaults.MaxSteps"/>, the CLI's bound).</summary>
    [Range(1, SamplingDefaults.StepsCeiling)]
    public int MaxSteps { get; set; } = SamplingDefaults.MaxSteps;

    /// <summary>Most images (<c>n</c>) one request may ask for (at most <see cref="SamplingDefaults.MaxImages"/>, the CLI's bound).</summary>
    [Range(1, SamplingDefaults.MaxImages)]
    public int MaxImagesPerRequest { get; set; } = 4;

    /// <summary>Largest classifier-free guidance weight accepted (at most <see cref="SamplingDefaults.MaxGuidance"/>, the CLI's bound).</summary>
    [Range(0, SamplingDefaults.MaxGuidance)]
    public float MaxGuidance { get; set; } = SamplingDefaults.MaxGuidance;

    /// <summary>How long POST /generate waits for the image when the request has no <c>Prefer: wait=N</c>.</summary>
    [Range(0, 3600)]
    public int DefaultWaitSeconds { get; set; } = 30;

    /// <summary>Cap on <c>Prefer: wait=N</c>; larger values are lowered to it.</summary>
    [Range(0, 3600)]
    public int MaxWaitSeconds { get; set; } = 120;

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        if (DefaultSteps > MaxSteps)
        {
            yield return new ValidationResult("Sampling:DefaultSteps must not exceed Sampling:MaxSteps", [nameof(DefaultSteps)]);
        }
        if (DefaultWaitSeconds > MaxWaitSeconds)
        {
            yield return new ValidationResult("Sampling:DefaultWaitSeconds must not exceed Sampling:MaxWaitSeconds", [nameof(DefaultWaitSeconds)]);
        }
    }
}

/// <summary>Optional API keys (section <c>Auth</c>).</summary>
public sealed class AuthOptions : IValidatableObject
{
    public const string Section = "Auth";

    /// <summary>
    /// SHA-256 hashes (64 hex digits) of the accepted API keys; empty = no keys needed.
    /// Clients send the key itself in <c>X-Api-Key</c> or <c>Authorization: Bearer</c>.
    /// Make a hash with <c>printf %s "$KEY" | sha256sum</c>.
    /// </summary>
    public string[] ApiKeys { get; set; } = [];

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        foreach (var hash in ApiKeys)
        {
            if (hash.Length != 64 || !hash.All(char.IsAsciiHexDigit))
            {
                yield return new ValidationResult("Auth:ApiKeys holds SHA-256 hashes: 64 hex digits each, not the keys themselves", [nameof(ApiKeys)]);
            }
        }
    }
}

/// <summary>Per-caller rate limit of POST /generate (section <c>RateLimit</c>), keyed by a valid API key, else client address.</summary>
public sealed class RateLimitOptions
{
    public const string Section = "RateLimit";

    /// <summary>Turns the limit on or off.</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>Requests allowed per caller in each <see cref="Window"/>.</summary>
    [Range(1, 1_000_000)]
    public int PermitLimit { get; set; } = 120;

    /// <summary>Length of the fixed window.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "1.00:00:00")]
    public TimeSpan Window { get; set; } = TimeSpan.FromMinutes(1);
}
