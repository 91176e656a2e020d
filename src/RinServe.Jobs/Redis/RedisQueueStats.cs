using StackExchange.Redis;

namespace RinServe.Jobs;

/// <summary>Where a queued job stands in its model's stream, and how many jobs the stream holds (the depth gauge).</summary>
internal sealed class RedisQueueStats(RedisCalls calls, RedisKeys keys, JobMetrics metrics)
{
    /// <summary>1 = next to run: the entries after the group's last delivery and before the job's own, plus one.</summary>
    public async Task<int> PositionAsync(string model, RedisValue entry, CancellationToken ct)
    {
        var stream = keys.Stream(model);
        var groups = await calls.RunAsync(db => db.StreamGroupInfoAsync(stream), ct).ConfigureAwait(false);
        var lastDelivered = groups.FirstOrDefault(g => g.Name == RedisKeys.ConsumerGroup).LastDeliveredId ?? "0-0";
        var ahead = (long)await calls.ScriptAsync(RedisScripts.CountBetween,
            new { stream, after = "(" + lastDelivered, before = "(" + entry }, ct).ConfigureAwait(false);
        return (int)ahead + 1;
    }

    /// <summary>Jobs waiting or running for a model; sets the depth gauge.</summary>
    public async Task<long> DepthAsync(string model, CancellationToken ct)
    {
        var depth = await calls.RunAsync(db => db.StreamLengthAsync(keys.Stream(model)), ct).ConfigureAwait(false);
        metrics.SetDepth(model, depth);
        return depth;
    }

    /// <summary>Refreshes the depth gauge after a job left the queue; an unreachable Redis leaves it to the next call.</summary>
    public async Task RefreshDepthAsync(string model)
    {
        try
        {
            await DepthAsync(model, CancellationToken.None).ConfigureAwait(false);
        }
        catch (QueueUnavailableException)
        {
        }
    }
}
