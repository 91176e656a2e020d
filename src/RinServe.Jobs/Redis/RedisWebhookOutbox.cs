using StackExchange.Redis;

namespace RinServe.Jobs;

/// <summary>
/// The webhooks due, as a Redis stream (<see cref="RedisKeys.Webhooks"/>) read by the consumer group
/// <see cref="RedisKeys.WebhookGroup"/>: the terminal-state scripts add to it, any process delivers, a delivery held by a
/// process that died is claimed again (XAUTOCLAIM) once idle for the caller's reclaim time.
/// </summary>
internal sealed class RedisWebhookOutbox(RedisCalls calls, RedisKeys keys, TimeProvider time)
{
    private const string Group = RedisKeys.WebhookGroup;
    private bool _group;
    private DateTimeOffset _nextReclaim;

    public async Task<IReadOnlyList<WebhookDue>> TakeAsync(string consumer, int max, TimeSpan reclaimAfter, TimeSpan wait, CancellationToken ct)
    {
        var stream = keys.Webhooks;
        var deadline = time.GetUtcNow() + wait;
        while (true)
        {
            try
            {
                if (!_group)
                {
                    try
                    {
                        await calls.RunAsync(db => db.StreamCreateConsumerGroupAsync(stream, Group, "0-0", createStream: true), ct).ConfigureAwait(false);
                    }
                    catch (RedisServerException ex) when (ex.Message.Contains("BUSYGROUP", StringComparison.Ordinal))
                    {
                    }
                    _group = true;
                }
                var due = new List<WebhookDue>();
                if (time.GetUtcNow() >= _nextReclaim)
                {
                    _nextReclaim = time.GetUtcNow() + reclaimAfter / 4;
                    var claimed = await calls.RunAsync(db => db.StreamAutoClaimAsync(stream, Group, consumer,
                        (long)reclaimAfter.TotalMilliseconds, "0-0", max), ct).ConfigureAwait(false);
                    due.AddRange(claimed.ClaimedEntries.Select(Due));
                }
                if (due.Count < max)
                {
                    var entries = await calls.RunAsync(db => db.StreamReadGroupAsync(stream, Group, consumer, ">", max - due.Count), ct).ConfigureAwait(false);
                    due.AddRange(entries.Select(Due));
                }
                if (due.Count > 0 || time.GetUtcNow() >= deadline)
                {
                    return due;
                }
            }
            catch (RedisServerException ex) when (ex.Message.Contains("NOGROUP", StringComparison.Ordinal))
            {
                _group = false; // Redis restarted without its data: make the group again
            }
            await Task.Delay(TimeSpan.FromMilliseconds(100), time, ct).ConfigureAwait(false);
        }
    }

    public Task AcknowledgeAsync(WebhookDue due, CancellationToken ct) =>
        calls.RunAsync(async db =>
        {
            await db.StreamAcknowledgeAsync(keys.Webhooks, Group, due.Lease).ConfigureAwait(false);
            await db.StreamDeleteAsync(keys.Webhooks, [due.Lease]).ConfigureAwait(false);
            return true;
        }, ct);

    private WebhookDue Due(StreamEntry entry)
    {
        var jobKey = (string?)entry["job"] ?? "";
        var prefix = (string)keys.Job("")!;
        return new WebhookDue(jobKey.StartsWith(prefix, StringComparison.Ordinal) ? jobKey[prefix.Length..] : jobKey, entry.Id!);
    }
}
