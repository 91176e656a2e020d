using System.Collections.Concurrent;
using StackExchange.Redis;

namespace RinServe.Jobs;

/// <summary>
/// Wakes idle workers when a job of their model is queued (pub/sub on <see cref="RedisKeys.Wake"/>, published by the
/// scripts that queue a job), with a poll every <c>Workers:PollInterval</c> as the fallback for a lost message.
/// </summary>
internal sealed class RedisWakeUps(RedisCalls calls, RedisKeys keys, TimeSpan pollInterval, TimeProvider time)
{
    public TimeSpan PollInterval => pollInterval;

    private readonly ConcurrentDictionary<string, WakeSignal> _signals = new(StringComparer.Ordinal);

    /// <summary>The model's wake-up signal, subscribed on first use; null while Redis cannot be reached.</summary>
    public async Task<WakeSignal?> SignalAsync(string model)
    {
        if (_signals.TryGetValue(model, out var existing))
        {
            return existing;
        }
        var signal = new WakeSignal();
        try
        {
            await calls.Subscriber.SubscribeAsync(RedisChannel.Literal(keys.Wake(model)), (_, _) => signal.Fire()).ConfigureAwait(false);
        }
        catch (Exception ex) when (RedisResilience.IsUnavailable(ex))
        {
            return null;
        }
        return _signals.GetOrAdd(model, signal);
    }

    /// <summary>Waits for <paramref name="woken"/>, a poll interval at most, and never past <paramref name="deadline"/>.</summary>
    public async Task WaitAsync(Task? woken, DateTimeOffset deadline, CancellationToken ct)
    {
        var left = deadline - time.GetUtcNow();
        var interval = left < pollInterval ? (left > TimeSpan.Zero ? left : TimeSpan.Zero) : pollInterval;
        try
        {
            await (woken ?? Task.Delay(Timeout.Infinite, ct)).WaitAsync(interval, time, ct).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            // No wake-up: poll anyway (a publish can be lost while Redis reconnects).
        }
    }

    /// <summary>A task that completes at the next wake-up message.</summary>
    public sealed class WakeSignal
    {
        private TaskCompletionSource _next = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private int _version;

        public Task Next => Volatile.Read(ref _next).Task;

        /// <summary>How many wake-ups came so far: a change since a caller's last look means a job was queued since.</summary>
        public int Version => Volatile.Read(ref _version);

        public void Fire()
        {
            Interlocked.Increment(ref _version);
            Interlocked.Exchange(ref _next, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
        }
    }
}
