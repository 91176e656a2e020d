using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Polly.Registry;
using RinServe.Diffusion;
using StackExchange.Redis;

namespace RinServe.Jobs;

/// <summary>
/// The distributed backend: one Redis Stream per model read by the consumer group <c>workers</c>
/// (ack on success, XAUTOCLAIM of entries idle past the visibility timeout), a hash per job,
/// one key per image, pub/sub for change events, a dead-letter stream. Every state change that must
/// not race (enqueue with bound and idempotency, start, complete once, fail, cancel) is one Lua script
/// (<see cref="RedisScripts"/>); key names come from <see cref="RedisKeys"/>. This class takes the API's calls
/// and hands the worker's to <see cref="RedisStreamConsumer"/> and <see cref="RedisJobLifecycle"/>.
/// </summary>
public sealed class RedisJobQueue : IJobQueue
{
    public bool Durable => true;

    private readonly JobsOptions _options;
    private readonly TimeProvider _time;
    private readonly JobMetrics _metrics;
    private readonly RedisCalls _calls;
    private readonly RedisKeys _keys;
    private readonly RedisWebhookOutbox _webhooks;
    private readonly RedisQueueStats _stats;
    private readonly RedisJobStore _store;
    private readonly RedisJobLifecycle _lifecycle;
    private readonly RedisStreamConsumer _consumer;

    public RedisJobQueue(
        IConnectionMultiplexer redis,
        IOptions<JobsOptions> options,
        IOptions<WorkersOptions> workers,
        ResiliencePipelineProvider<string> pipelines,
        JobMetrics metrics,
        TimeProvider time,
        ILogger<RedisJobQueue> logger)
    {
        _options = options.Value;
        _time = time;
        _metrics = metrics;
        _calls = new RedisCalls(redis, pipelines.GetPipeline(RedisResilience.PipelineName), _options.RedisBreakDuration);
        _keys = new RedisKeys(_options.KeyPrefix);
        _webhooks = new RedisWebhookOutbox(_calls, _keys, time);
        _stats = new RedisQueueStats(_calls, _keys, metrics);
        _store = new RedisJobStore(_calls, _keys, _stats);
        _lifecycle = new RedisJobLifecycle(_calls, _keys, _options, _stats, time, logger);
        var wakeUps = new RedisWakeUps(_calls, _keys, workers.Value.PollInterval, time);
        _consumer = new RedisStreamConsumer(_calls, _keys, _options, _store, _lifecycle, wakeUps, metrics, time, logger);
    }

    public async Task<EnqueueResult> EnqueueAsync(JobSpec spec, IdempotencyClaim? idempotency, CancellationToken ct = default)
    {
        await _consumer.EnsureGroupAsync(spec.Model, ct).ConfigureAwait(false);
        var id = JobId.New();
        var createdAt = _time.GetUtcNow();
        var result = (RedisResult[])(await _calls.ScriptAsync(RedisScripts.Enqueue, new
        {
            stream = _keys.Stream(spec.Model),
            jobKey = _keys.Job(id),
            idemKey = idempotency is null ? _keys.NoIdempotency : _keys.Idempotency(spec.Owner, idempotency.Key),
            maxLength = _options.MaxQueueLength,
            hasOwner = spec.Owner is null ? "0" : "1",
            ownerKey = _keys.Owner(spec.Owner),
            maxPerOwner = _options.MaxJobsPerKey,
            hasWebhook = spec.Webhook is null ? "0" : "1",
            hooksKey = _keys.Webhooks,
            id,
            spec = JsonSerializer.Serialize(spec, RedisJobStore.Json),
            now = createdAt.ToUnixTimeMilliseconds(),
            jobTtl = RedisJobLifecycle.TtlSeconds(_options.JobTtl),
            hasIdempotency = idempotency is null ? "0" : "1",
            fingerprint = idempotency?.Fingerprint ?? "",
            resultTtl = RedisJobLifecycle.TtlSeconds(_options.ResultTtl),
            wake = _keys.Wake(spec.Model),
        }, ct).ConfigureAwait(false))!;
        var outcome = (string)result[0]!;
        var detail = (string)result[1]!;
        switch (outcome)
        {
            case "existing":
                var bar = detail.IndexOf('|', StringComparison.Ordinal);
                var earlier = await GetAsync(detail[..bar], ct).ConfigureAwait(false);
                if (earlier is null)
                {
                    // The key outlived its job (TTLs differ by a second at most): treat as a conflict rather than guess.
                    return new EnqueueResult(EnqueueStatus.IdempotencyConflict, null);
                }
                return new EnqueueResult(detail[(bar + 1)..] == idempotency!.Fingerprint ? EnqueueStatus.Existing : EnqueueStatus.IdempotencyConflict, earlier);
            case "keyfull":
                return new EnqueueResult(EnqueueStatus.KeyFull, null, _options.QueueFullRetryAfter);
            case "full":
                _metrics.SetDepth(spec.Model, long.Parse(detail, CultureInfo.InvariantCulture));
                return new EnqueueResult(EnqueueStatus.QueueFull, null, _options.QueueFullRetryAfter);
            default:
                _metrics.SetDepth(spec.Model, long.Parse(detail, CultureInfo.InvariantCulture));
                return new EnqueueResult(EnqueueStatus.Created, await ReadBackAsync(id, spec, createdAt, ct).ConfigureAwait(false));
        }
    }

    /// <summary>
    /// The job just queued, with its queue position. The job exists from the script on, so if Redis goes away before
    /// this second read the caller still gets the job (position unknown) rather than an error that invites a duplicate.
    /// </summary>
    private async Task<JobRecord> ReadBackAsync(string id, JobSpec spec, DateTimeOffset createdAt, CancellationToken ct)
    {
        try
        {
            return await GetAsync(id, ct).ConfigureAwait(false)
                ?? throw new InvalidOperationException($"Job {id} vanished right after it was queued.");
        }
        catch (QueueUnavailableException)
        {
            return new JobRecord(id, spec, JobState.Queued, createdAt, null, null, 0, null, null, 0, 0);
        }
    }

    public Task<JobRecord?> GetAsync(string id, CancellationToken ct = default) => _store.GetAsync(id, ct);

    public Task<GeneratedImage?> GetImageAsync(string id, int index, CancellationToken ct = default) => _store.GetImageAsync(id, index, ct);

    public async Task<JobRecord?> CancelAsync(string id, CancellationToken ct = default)
    {
        var job = await GetAsync(id, ct).ConfigureAwait(false);
        if (job is null || job.IsTerminal)
        {
            return job;
        }
        await _calls.ScriptAsync(RedisScripts.Cancel, new
        {
            jobKey = _keys.Job(id), stream = _keys.Stream(job.Spec.Model), now = _time.GetUtcNow().ToUnixTimeMilliseconds(),
            resultTtl = RedisJobLifecycle.TtlSeconds(_options.ResultTtl), events = _keys.Events(id),
        }, ct).ConfigureAwait(false);
        await _stats.RefreshDepthAsync(job.Spec.Model).ConfigureAwait(false);
        return await GetAsync(id, ct).ConfigureAwait(false);
    }

    public async IAsyncEnumerable<JobRecord> WatchAsync(string id, [EnumeratorCancellation] CancellationToken ct = default)
    {
        // Subscribe before the first read so no change between the two is lost.
        await using var events = await RedisJobEvents.SubscribeAsync(_calls, _keys, id, ct).ConfigureAwait(false);
        await foreach (var job in JobWatcher.WatchAsync(token => GetAsync(id, token), events.NextAsync, _time, ct).ConfigureAwait(false))
        {
            yield return job;
        }
    }

    public async Task<bool> RequestPreviewsAsync(string id, int every, CancellationToken ct = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(every, 1);
        var asked = (long)await _calls.ScriptAsync(RedisScripts.RequestPreviews, new { jobKey = _keys.Job(id), every }, ct).ConfigureAwait(false);
        return asked == 1;
    }

    public Task<JobPreview?> GetPreviewAsync(string id, CancellationToken ct = default) => _store.GetPreviewAsync(id, ct);

    public Task<long> DepthAsync(string model, CancellationToken ct = default) => _stats.DepthAsync(model, ct);

    public Task PingAsync(CancellationToken ct = default) => _calls.RunAsync(db => db.PingAsync(), ct);

    public Task<IReadOnlyList<LeasedJob>> TakeAsync(
        string model, string consumer, int max, TimeSpan firstWait, TimeSpan batchDelay, CancellationToken ct = default) =>
        _consumer.TakeAsync(model, consumer, max, firstWait, batchDelay, ct);

    public Task WaitForWorkAsync(IReadOnlyList<string> models, TimeSpan maxWait, CancellationToken ct = default) =>
        _consumer.WaitForWorkAsync(models, maxWait, ct);

    public Task<bool> MarkRunningAsync(LeasedJob job, CancellationToken ct = default) => _lifecycle.MarkRunningAsync(job, ct);

    public void ReportProgress(LeasedJob job, int step, GeneratedImage? preview = null) => _lifecycle.ReportProgress(job, step, preview);

    public Task<HeartbeatResult> HeartbeatAsync(string consumer, IReadOnlyList<LeasedJob> jobs, CancellationToken ct = default) =>
        _lifecycle.HeartbeatAsync(consumer, jobs, ct);

    public Task<bool> CompleteAsync(LeasedJob job, IReadOnlyList<GeneratedImage> images, CancellationToken ct = default) =>
        _lifecycle.CompleteAsync(job, images, ct);

    public Task FailAsync(LeasedJob job, string error, CancellationToken ct = default) =>
        _lifecycle.FailAsync(job, error, _options.MaxDeliveries, ct);

    public Task ReleaseAsync(LeasedJob job, CancellationToken ct = default) => _lifecycle.ReleaseAsync(job, ct);

    public Task AcknowledgeAsync(LeasedJob job, CancellationToken ct = default) =>
        _lifecycle.DropEntryAsync(_keys.Stream(job.Job.Spec.Model), job.Lease, ct);

    public Task<IReadOnlyList<WebhookDue>> TakeWebhooksAsync(string consumer, int max, TimeSpan reclaimAfter, TimeSpan wait, CancellationToken ct = default) =>
        _webhooks.TakeAsync(consumer, max, reclaimAfter, wait, ct);

    public Task AcknowledgeWebhookAsync(WebhookDue due, CancellationToken ct = default) => _webhooks.AcknowledgeAsync(due, ct);
}
