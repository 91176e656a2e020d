using System.ComponentModel.DataAnnotations;

namespace RinServe.WebApi.Webhooks;

/// <summary>Webhooks on job completion (section <c>Webhooks</c>), signed as Standard Webhooks says.</summary>
public sealed class WebhooksOptions : IValidatableObject
{
    public const string Section = "Webhooks";

    /// <summary>
    /// The signing secret, <c>whsec_</c> + base64 of 24 to 64 random bytes (<c>printf 'whsec_%s' "$(head -c 32 /dev/urandom | base64)"</c>).
    /// Empty: webhooks are off, and a request naming one is a 400.
    /// </summary>
    public string Secret { get; set; } = "";

    /// <summary>
    /// Hosts a webhook may reach although they are private, loopback or link-local: <c>host</c> (any port) or
    /// <c>host:port</c>, as the URL writes them (<c>receiver.internal</c>, <c>10.0.0.7:8443</c>, <c>[fd00::7]:443</c>).
    /// Everything else must resolve to public addresses only.
    /// </summary>
    public string[] AllowedHosts { get; set; } = [];

    /// <summary>Timeout of one delivery attempt (connect, send, answer).</summary>
    [Range(typeof(TimeSpan), "00:00:00.100", "00:01:00")]
    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Attempts of one delivery before it is given up (logged, counted); a 2xx answer ends it.</summary>
    [Range(1, 20)]
    public int MaxAttempts { get; set; } = 6;

    /// <summary>Delay before the second attempt; each later one doubles it, with jitter (Polly).</summary>
    [Range(typeof(TimeSpan), "00:00:00.010", "00:10:00")]
    public TimeSpan FirstRetryDelay { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// A delivery held this long by a process that stopped (Redis) is taken over by another. Longer than a delivery's
    /// whole retry schedule, or a slow one is sent twice (the receiver drops the repeat by its webhook-id).
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00.100", "01:00:00")]
    public TimeSpan ReclaimAfter { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>Deliveries in flight at once per process.</summary>
    [Range(1, 256)]
    public int Concurrency { get; set; } = 8;

    public bool Enabled => Secret.Length > 0;

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        if (Enabled && WebhookSigner.KeyOf(Secret) is null)
        {
            yield return new ValidationResult("Webhooks:Secret must be whsec_ followed by the base64 of 24 to 64 bytes", [nameof(Secret)]);
        }
    }
}
