using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using StackExchange.Redis;

namespace RinServe.Jobs;

/// <summary>
/// The only place Redis key and channel names are built. Every name starts with <c>Jobs:KeyPrefix</c>, so
/// several deployments can share one Redis; k8s/base/keda.yaml names the streams and the group too.
/// </summary>
public sealed class RedisKeys(string prefix)
{
    /// <summary>The consumer group every worker reads the streams with.</summary>
    public const string ConsumerGroup = "workers";

    /// <summary>The stream of a model's queued jobs: entries <c>id</c> = job id.</summary>
    public RedisKey Stream(string model) => prefix + "q:" + model;

    /// <summary>The hash of one job: spec, state, times, step, stream entry, deliveries, completions.</summary>
    public RedisKey Job(string id) => prefix + "job:" + id;

    /// <summary>The hash of a job's latest x̂0 preview: step and image.</summary>
    public RedisKey Preview(string id) => prefix + "pv:" + id;

    /// <summary>The k-th image of a succeeded job.</summary>
    public RedisKey Image(string id, int k) => prefix + "img:" + id + ":" + k.ToString(CultureInfo.InvariantCulture);

    /// <summary>The stream of jobs that failed for good.</summary>
    public RedisKey DeadLetter => prefix + "dead";

    /// <summary>An Idempotency-Key of an owner, hashed so any header text gives a short, safe key.</summary>
    public RedisKey Idempotency(string? owner, string key) =>
        prefix + "idem:" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes((owner ?? "") + "\n" + key)));

    /// <summary>
    /// The unfinished jobs of one owner (API key hash): a sorted set of job keys scored by the time they expire, so a job
    /// that expires unfinished stops counting. Members leave at every terminal state.
    /// </summary>
    public RedisKey Owner(string? owner) => prefix + "own:" + (owner ?? "");

    /// <summary>The stream of webhooks due (entries <c>job</c> = the job's key), read by the consumer group <see cref="WebhookGroup"/>.</summary>
    public RedisKey Webhooks => prefix + "hooks";

    /// <summary>The consumer group that delivers webhooks.</summary>
    public const string WebhookGroup = "webhooks";

    /// <summary>Stands in for the idempotency key of an enqueue without one (the script never touches it).</summary>
    public RedisKey NoIdempotency => prefix + "idem:none";

    /// <summary>Pub/sub channel of a job's changes, published by every script that changes the job.</summary>
    public string Events(string id) => prefix + "ev:" + id;

    /// <summary>Pub/sub channel published on every enqueue of a model, so idle workers wake at once instead of at their next poll.</summary>
    public string Wake(string model) => prefix + "wake:" + model;
}
