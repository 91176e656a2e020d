using Microsoft.Extensions.Logging;
using RinServe.Diffusion;
using StackExchange.Redis;

namespace RinServe.Jobs;

/// <summary>
/// The worker side of a job's life in Redis, from the start of a delivery to its end: running, progress, heartbeats,
/// the one completion, failure (retry or dead letter), hand-back, and dropping a delivery.
/// </summary>
internal sealed class RedisJobLifecycle(
    RedisCalls calls, RedisKeys keys, JobsOptions options, RedisQueueStats stats, TimeProvider time, ILogger logger)
{
    private const string Group = RedisKeys.ConsumerGroup;

    private long Now => time.GetUtcNow().ToUnixTimeMilliseconds();

    private long ResultTtl => TtlSeconds(options.ResultTtl);

    /// <summary>A TTL as the scripts take it: whole seconds, rounded up, at least one.</summary>
    public static long TtlSeconds(TimeSpan ttl) => Math.Max(1, (long)Math.Ceiling(ttl.TotalSeconds));

    public async Task<bool> MarkRunningAsync(LeasedJob job, CancellationToken ct)
    {
        var started = (long)await calls.ScriptAsync(RedisScripts.Start, new
        {
            jobKey = keys.Job(job.Id), stream = keys.Stream(job.Job.Spec.Model), group = Group, entry = job.Lease,
            now = Now, events = keys.Events(job.Id),
        }, ct).ConfigureAwait(false);
        return started == 1;
    }

    public void ReportProgress(LeasedJob job, int step, GeneratedImage? preview)
    {
        try
        {
            // Fire and forget: the sampler thread must never wait on the network; a lost update is harmless.
            if (preview is null)
            {
                calls.Db.ScriptEvaluate(RedisScripts.Progress,
                    new { jobKey = keys.Job(job.Id), step, events = keys.Events(job.Id) }, CommandFlags.FireAndForget);
            }
            else
            {
                calls.Db.ScriptEvaluate(RedisScripts.Preview, new
                {
                    jobKey = keys.Job(job.Id), previewKey = keys.Preview(job.Id), step, events = keys.Events(job.Id),
                    image = ImageBlob.Encode(preview), resultTtl = ResultTtl,
                }, CommandFlags.FireAndForget);
            }
        }
        catch (Exception ex) when (RedisResilience.IsUnavailable(ex) || ex is ObjectDisposedException)
        {
            // Redis is away (fail-fast backlog throws at once), or the process is past its shutdown timeout and the
            // connection is gone: progress is not worth failing the batch.
        }
    }

    public async Task<HeartbeatResult> HeartbeatAsync(string consumer, IReadOnlyList<LeasedJob> jobs, CancellationToken ct)
    {
        var canceled = new HashSet<string>(StringComparer.Ordinal);
        var previews = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var model in jobs.GroupBy(j => j.Job.Spec.Model))
        {
            // XCLAIM with min-idle 0 and JUSTID resets the entries' idle time without counting a delivery.
            var leases = model.Select(j => (RedisValue)j.Lease).ToArray();
            await calls.RunAsync(db => db.StreamClaimIdsOnlyAsync(keys.Stream(model.Key), Group, consumer, 0, leases), ct).ConfigureAwait(false);
        }
        foreach (var job in jobs)
        {
            // The preview wish comes in the same call as the state: asking nobody costs nothing extra.
            var fields = await calls.RunAsync(db => db.HashGetAsync(keys.Job(job.Id), ["state", "preview_every"]), ct).ConfigureAwait(false);
            if (fields[0] != "running" && fields[0] != "queued")
            {
                canceled.Add(job.Id);
            }
            if (fields[1].HasValue && (int)fields[1] > 0)
            {
                previews[job.Id] = (int)fields[1];
            }
        }
        return new HeartbeatResult(canceled, previews);
    }

    public async Task<bool> CompleteAsync(LeasedJob job, IReadOnlyList<GeneratedImage> images, CancellationToken ct)
    {
        // 'completions' on the job hash counts stored results (the script refuses a second one): it expires with the job.
        RedisKey[] scriptKeys = [keys.Job(job.Id), keys.Stream(job.Job.Spec.Model), .. images.Select((_, k) => keys.Image(job.Id, k))];
        RedisValue[] args =
        [
            Group, job.Lease, Now, ResultTtl, keys.Events(job.Id), job.Job.Spec.Steps,
            .. images.Select(i => (RedisValue)ImageBlob.Encode(i)),
        ];
        var done = (long)await calls.RunAsync(db => db.ScriptEvaluateAsync(RedisScripts.Complete, scriptKeys, args), ct).ConfigureAwait(false);
        await stats.RefreshDepthAsync(job.Job.Spec.Model).ConfigureAwait(false);
        return done == 1;
    }

    /// <summary>A failed attempt: queued again while under <paramref name="maxDeliveries"/> deliveries, else dead-lettered.</summary>
    public async Task FailAsync(LeasedJob job, string error, int maxDeliveries, CancellationToken ct)
    {
        var outcome = (long)await calls.ScriptAsync(RedisScripts.Fail, new
        {
            jobKey = keys.Job(job.Id), stream = keys.Stream(job.Job.Spec.Model), deadLetter = keys.DeadLetter,
            group = Group, entry = job.Lease, id = job.Id, error, now = Now, resultTtl = ResultTtl, maxDeliveries,
            deadLetterMaxLength = options.DeadLetterMaxLength, events = keys.Events(job.Id), wake = keys.Wake(job.Job.Spec.Model),
        }, ct).ConfigureAwait(false);
        if (outcome == 2)
        {
            logger.LogError("Job {JobId} failed for good and went to the dead-letter stream: {Error}", job.Id, error);
        }
    }

    public Task ReleaseAsync(LeasedJob job, CancellationToken ct) =>
        calls.ScriptAsync(RedisScripts.Release, new
        {
            jobKey = keys.Job(job.Id), stream = keys.Stream(job.Job.Spec.Model), group = Group, entry = job.Lease,
            id = job.Id, events = keys.Events(job.Id), wake = keys.Wake(job.Job.Spec.Model),
        }, ct);

    /// <summary>Drops a delivery's stream entry: acknowledged for the group and deleted.</summary>
    public Task DropEntryAsync(RedisKey stream, RedisValue entry, CancellationToken ct) =>
        calls.RunAsync(async db =>
        {
            await db.StreamAcknowledgeAsync(stream, Group, entry).ConfigureAwait(false);
            await db.StreamDeleteAsync(stream, [entry]).ConfigureAwait(false);
        }, ct);
}
