using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using StackExchange.Redis;

namespace RinServe.Jobs;

/// <summary>
/// Takes jobs off a model's stream for a worker: the consumer group (made on first use, from "0-0"), new entries
/// (XREADGROUP), and entries idle past the visibility timeout that a dead worker held (XAUTOCLAIM).
/// </summary>
internal sealed class RedisStreamConsumer(
    RedisCalls calls,
    RedisKeys keys,
    JobsOptions options,
    RedisJobStore store,
    RedisJobLifecycle lifecycle,
    RedisWakeUps wakeUps,
    JobMetrics metrics,
    TimeProvider time,
    ILogger logger)
{
    private const string Group = RedisKeys.ConsumerGroup;
    private readonly ConcurrentDictionary<string, bool> _groups = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, DateTimeOffset> _nextReclaim = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, (int Version, DateTimeOffset NextPoll)> _looked = new(StringComparer.Ordinal);

    public async Task EnsureGroupAsync(string model, CancellationToken ct)
    {
        if (_groups.ContainsKey(model))
        {
            return;
        }
        try
        {
            // From "0-0" so jobs queued before the first worker started are delivered too.
            await calls.RunAsync(db => db.StreamCreateConsumerGroupAsync(keys.Stream(model), Group, "0-0", createStream: true), ct).ConfigureAwait(false);
        }
        catch (RedisServerException ex) when (ex.Message.Contains("BUSYGROUP", StringComparison.Ordinal))
        {
        }
        _groups[model] = true;
    }

    /// <summary>See <see cref="IJobQueue.TakeAsync"/>.</summary>
    public async Task<IReadOnlyList<LeasedJob>> TakeAsync(
        string model, string consumer, int max, TimeSpan firstWait, TimeSpan batchDelay, CancellationToken ct)
    {
        await EnsureGroupAsync(model, ct).ConfigureAwait(false);
        var wake = await wakeUps.SignalAsync(model).ConfigureAwait(false);
        // A look between a busy worker's steps (no wait) costs a round trip per model per step: skip it while no job of the
        // model was queued since the last look (the enqueue's wake-up says so), polling still every Workers:PollInterval
        // for a lost wake-up and for jobs to reclaim.
        if (firstWait <= TimeSpan.Zero && wake is not null && _looked.TryGetValue(model, out var looked)
            && looked.Version == wake.Version && time.GetUtcNow() < looked.NextPoll)
        {
            return [];
        }
        if (wake is not null)
        {
            _looked[model] = (wake.Version, time.GetUtcNow() + wakeUps.PollInterval);
        }
        var stream = keys.Stream(model);
        var taken = new List<LeasedJob>();
        var deadline = time.GetUtcNow() + firstWait;
        try
        {
            if (time.GetUtcNow() >= _nextReclaim.GetValueOrDefault(model))
            {
                _nextReclaim[model] = time.GetUtcNow() + options.ReclaimInterval;
                var claimed = await calls.RunAsync(db => db.StreamAutoClaimAsync(stream, Group, consumer,
                    (long)options.VisibilityTimeout.TotalMilliseconds, "0-0", max), ct).ConfigureAwait(false);
                foreach (var entry in claimed.ClaimedEntries)
                {
                    logger.LogWarning("Reclaimed job entry {Entry} of model {Model} from a worker that stopped answering", entry.Id, model);
                    await AcceptAsync(stream, entry, taken, ct).ConfigureAwait(false);
                }
            }
            while (taken.Count < max)
            {
                // Taken before the read, so an enqueue between the read and the wait still wakes us.
                var woken = wake?.Next;
                var entries = await calls.RunAsync(db => db.StreamReadGroupAsync(stream, Group, consumer, ">", max - taken.Count), ct).ConfigureAwait(false);
                foreach (var entry in entries)
                {
                    await AcceptAsync(stream, entry, taken, ct).ConfigureAwait(false);
                }
                if (taken.Count >= max)
                {
                    break;
                }
                if (entries.Length == 0)
                {
                    if (time.GetUtcNow() >= deadline)
                    {
                        break;
                    }
                    await wakeUps.WaitAsync(woken, deadline, ct).ConfigureAwait(false);
                }
                if (taken.Count > 0 && deadline > time.GetUtcNow() + batchDelay)
                {
                    deadline = time.GetUtcNow() + batchDelay;
                }
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested && taken.Count > 0)
        {
            // Shutting down while filling a batch: return what is held so the worker hands it back.
        }
        catch (RedisServerException ex) when (ex.Message.Contains("NOGROUP", StringComparison.Ordinal))
        {
            // Redis restarted without persistence: the group is gone. Make it again on the next take.
            _groups.TryRemove(model, out _);
        }
        return taken;
    }

    /// <summary>
    /// Until a wake-up of one of the models (at once when one came since its last look), at most a poll interval
    /// (a wake-up can be lost while Redis reconnects) and <paramref name="maxWait"/>.
    /// </summary>
    public async Task WaitForWorkAsync(IReadOnlyList<string> models, TimeSpan maxWait, CancellationToken ct)
    {
        var waits = new List<Task>();
        foreach (var model in models)
        {
            if (await wakeUps.SignalAsync(model).ConfigureAwait(false) is not { } wake
                || !_looked.TryGetValue(model, out var looked) || looked.Version != wake.Version)
            {
                return; // never looked, no signal, or a wake-up since the last look: take now
            }
            waits.Add(wake.Next);
        }
        var wait = maxWait < wakeUps.PollInterval ? maxWait : wakeUps.PollInterval;
        try
        {
            await Task.WhenAny(waits).WaitAsync(wait, time, ct).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            // No wake-up: poll anyway.
        }
    }

    private async Task AcceptAsync(RedisKey stream, StreamEntry entry, List<LeasedJob> taken, CancellationToken ct)
    {
        var id = (string?)entry["id"];
        var (job, current) = id is null ? (null, RedisValue.Null) : await store.ReadAsync(id, ct).ConfigureAwait(false);
        if (job is null || job.IsTerminal || current != entry.Id)
        {
            // Expired, canceled, finished, or a stale entry of a job that was queued again.
            await lifecycle.DropEntryAsync(stream, entry.Id, ct).ConfigureAwait(false);
            return;
        }
        var lease = new LeasedJob(job, entry.Id!);
        if (job.Deliveries >= options.MaxDeliveries)
        {
            await lifecycle.FailAsync(lease, $"gave up after {job.Deliveries} deliveries: the workers that ran it stopped", 0, ct).ConfigureAwait(false);
            metrics.JobFailed(job.Spec.Model, "max_deliveries");
            return;
        }
        taken.Add(lease);
    }
}
