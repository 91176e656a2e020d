using StackExchange.Redis;

namespace RinServe.Jobs;

/// <summary>
/// Every Lua script of the Redis backend: each state change that must not race is one script. Parameters are named
/// (<c>@jobKey</c>, <c>@now</c>, ...) and taken from the members of the object passed with the script; members of
/// type <see cref="RedisKey"/> are also sent as KEYS, so cluster routing sees them. Names come from <see cref="RedisKeys"/>.
/// </summary>
internal static class RedisScripts
{
    /// <summary>Drops the stream entry of a delivery: acknowledged for the group and deleted from the stream.</summary>
    private const string AckAndDelete = """
        redis.call('XACK', @stream, @group, @entry)
        redis.call('XDEL', @stream, @entry)
        """;

    /// <summary>Queues the job again under a new entry, and wakes the idle workers.</summary>
    private const string Requeue = """
        local entry = redis.call('XADD', @stream, '*', 'id', @id)
        redis.call('HSET', @jobKey, 'state', 'queued', 'step', '0', 'entry', entry)
        redis.call('PUBLISH', @events, 'queued')
        redis.call('PUBLISH', @wake, '1')
        """;

    private const string Terminal = "not state or state == 'succeeded' or state == 'failed' or state == 'canceled'";

    /// <summary>A job that reaches a terminal state stops counting against its owner's cap (KEYS-free: the owner key is in the job hash).</summary>
    private const string LeaveOwner = """
        local ownerKey = redis.call('HGET', JOBKEY, 'owner')
        if ownerKey then redis.call('ZREM', ownerKey, JOBKEY) end
        """;

    /// <summary>
    /// A job with a webhook that reaches a terminal state puts its webhook on the stream of those due, in the same script
    /// as the state: no end without its webhook, whoever crashes when (KEYS-free: the stream's key is in the job hash).
    /// </summary>
    private const string QueueWebhook = """
        local hooks = redis.call('HGET', JOBKEY, 'hooks')
        if hooks then redis.call('XADD', hooks, '*', 'job', JOBKEY) end
        """;

    /// <summary>What every terminal state does besides the state itself: leave the owner's count, queue the webhook.</summary>
    private static readonly string AtEndOfJob = LeaveOwner.Replace("JOBKEY", "@jobKey", StringComparison.Ordinal)
        + "\n" + QueueWebhook.Replace("JOBKEY", "@jobKey", StringComparison.Ordinal);
    private static readonly string AtEndOfKeys1 = LeaveOwner.Replace("JOBKEY", "KEYS[1]", StringComparison.Ordinal)
        + "\n" + QueueWebhook.Replace("JOBKEY", "KEYS[1]", StringComparison.Ordinal);

    /// <summary>
    /// Returns the job an earlier use of the idempotency key made ({'existing', 'id|fingerprint'}), or refuses a full
    /// queue ({'full', length}), or an owner at its cap ({'keyfull', count}), or queues the job ({'created', length}).
    /// </summary>
    public static readonly LuaScript Enqueue = LuaScript.Prepare("""
        if @hasIdempotency == '1' then
          local existing = redis.call('GET', @idemKey)
          if existing then return {'existing', existing} end
        end
        local len = redis.call('XLEN', @stream)
        if len >= tonumber(@maxLength) then return {'full', tostring(len)} end
        if @hasOwner == '1' then
          redis.call('ZREMRANGEBYSCORE', @ownerKey, '-inf', @now)
          local mine = redis.call('ZCARD', @ownerKey)
          if mine >= tonumber(@maxPerOwner) then return {'keyfull', tostring(mine)} end
        end
        local entry = redis.call('XADD', @stream, '*', 'id', @id)
        redis.call('HSET', @jobKey, 'spec', @spec, 'state', 'queued', 'created', @now, 'step', '0', 'entry', entry, 'deliveries', '0', 'images', '0')
        redis.call('EXPIRE', @jobKey, @jobTtl)
        if @hasWebhook == '1' then redis.call('HSET', @jobKey, 'hooks', @hooksKey) end
        if @hasOwner == '1' then
          redis.call('HSET', @jobKey, 'owner', @ownerKey)
          redis.call('ZADD', @ownerKey, tonumber(@now) + 1000 * tonumber(@jobTtl), @jobKey)
          redis.call('EXPIRE', @ownerKey, @jobTtl)
        end
        if @hasIdempotency == '1' then redis.call('SET', @idemKey, @id .. '|' .. @fingerprint, 'EX', @resultTtl) end
        redis.call('PUBLISH', @wake, '1')
        return {'created', tostring(len + 1)}
        """);

    /// <summary>How many entries lie strictly between two entry ids (exclusive bounds "(id").</summary>
    public static readonly LuaScript CountBetween = LuaScript.Prepare("return #redis.call('XRANGE', @stream, @after, @before)");

    public static readonly LuaScript Cancel = LuaScript.Prepare($$"""
        local state = redis.call('HGET', @jobKey, 'state')
        if not state then return 0 end
        if state == 'queued' or state == 'running' then
          redis.call('HSET', @jobKey, 'state', 'canceled', 'finished', @now)
          redis.call('EXPIRE', @jobKey, @resultTtl)
          {{AtEndOfJob}}
          if state == 'queued' then
            -- Nobody runs it yet: take it off the queue now (a worker that already read it acks it on start).
            redis.call('XDEL', @stream, redis.call('HGET', @jobKey, 'entry'))
          end
          redis.call('PUBLISH', @events, 'canceled')
        end
        return 1
        """);

    /// <summary>The smallest preview interval asked for wins; 0 when the job is unknown or finished.</summary>
    public static readonly LuaScript RequestPreviews = LuaScript.Prepare("""
        local state = redis.call('HGET', @jobKey, 'state')
        if state ~= 'queued' and state ~= 'running' then return 0 end
        local current = tonumber(redis.call('HGET', @jobKey, 'preview_every') or '0')
        if current == 0 or tonumber(@every) < current then redis.call('HSET', @jobKey, 'preview_every', @every) end
        return 1
        """);

    /// <summary>Marks the job running and counts the delivery; 0 (and the entry dropped) when it finished meanwhile.</summary>
    public static readonly LuaScript Start = LuaScript.Prepare($$"""
        local state = redis.call('HGET', @jobKey, 'state')
        if state ~= 'queued' and state ~= 'running' then
          {{AckAndDelete}}
          return 0
        end
        redis.call('HSET', @jobKey, 'state', 'running', 'step', '0')
        redis.call('HSETNX', @jobKey, 'started', @now)
        redis.call('HINCRBY', @jobKey, 'deliveries', 1)
        redis.call('PUBLISH', @events, 'running')
        return 1
        """);

    public static readonly LuaScript Progress = LuaScript.Prepare("""
        if redis.call('HGET', @jobKey, 'state') == 'running' then
          redis.call('HSET', @jobKey, 'step', @step)
          redis.call('PUBLISH', @events, 'progress')
        end
        return 0
        """);

    public static readonly LuaScript Preview = LuaScript.Prepare("""
        if redis.call('HGET', @jobKey, 'state') == 'running' then
          redis.call('HSET', @jobKey, 'step', @step, 'preview_step', @step)
          redis.call('HSET', @previewKey, 'step', @step, 'image', @image)
          redis.call('EXPIRE', @previewKey, @resultTtl)
          redis.call('PUBLISH', @events, 'progress')
        end
        return 0
        """);

    /// <summary>
    /// Stores the images and marks the job succeeded, once: 0, writing nothing, when it had already finished. The one
    /// script with positional KEYS and ARGV, because the image keys vary in number and named parameters are single
    /// values. KEYS: job, stream, then image 0..n-1. ARGV: group, entry, now, result TTL, events channel, steps,
    /// then the blob of image 0..n-1 (image key KEYS[i] takes ARGV[i + 4]).
    /// </summary>
    public static readonly string Complete = $$"""
        local state = redis.call('HGET', KEYS[1], 'state')
        redis.call('XACK', KEYS[2], ARGV[1], ARGV[2])
        redis.call('XDEL', KEYS[2], ARGV[2])
        if {{Terminal}} then return 0 end
        for i = 3, #KEYS do redis.call('SET', KEYS[i], ARGV[i + 4], 'EX', ARGV[4]) end
        redis.call('HSET', KEYS[1], 'state', 'succeeded', 'finished', ARGV[3], 'images', tostring(#KEYS - 2), 'step', ARGV[6])
        {{AtEndOfKeys1}}
        redis.call('HINCRBY', KEYS[1], 'completions', 1)
        redis.call('EXPIRE', KEYS[1], ARGV[4])
        redis.call('PUBLISH', ARGV[5], 'succeeded')
        return 1
        """;

    /// <summary>
    /// A failed attempt: queued again while deliveries are under <c>@maxDeliveries</c> (1), else failed for good and
    /// written to the dead-letter stream (2); 0 when the job had already finished.
    /// </summary>
    public static readonly LuaScript Fail = LuaScript.Prepare($$"""
        local state = redis.call('HGET', @jobKey, 'state')
        {{AckAndDelete}}
        if {{Terminal}} then return 0 end
        local deliveries = tonumber(redis.call('HGET', @jobKey, 'deliveries') or '0')
        if deliveries < tonumber(@maxDeliveries) then
          redis.call('HSET', @jobKey, 'error', @error)
          {{Requeue}}
          return 1
        end
        redis.call('HSET', @jobKey, 'state', 'failed', 'finished', @now, 'error', @error)
        redis.call('EXPIRE', @jobKey, @resultTtl)
        {{AtEndOfJob}}
        redis.call('XADD', @deadLetter, 'MAXLEN', '~', @deadLetterMaxLength, '*', 'id', @id, 'error', @error, 'deliveries', tostring(deliveries))
        redis.call('PUBLISH', @events, 'failed')
        return 2
        """);

    /// <summary>Hands a taken job back to the queue; 0 when it had already finished.</summary>
    public static readonly LuaScript Release = LuaScript.Prepare($$"""
        local state = redis.call('HGET', @jobKey, 'state')
        {{AckAndDelete}}
        if state ~= 'queued' and state ~= 'running' then return 0 end
        {{Requeue}}
        return 1
        """);
}
