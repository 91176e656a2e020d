using StackExchange.Redis;

namespace RinServe.Jobs;

/// <summary>A subscription to one job's change events (pub/sub on <see cref="RedisKeys.Events"/>), for a watcher.</summary>
internal sealed class RedisJobEvents : IAsyncDisposable
{
    private readonly ChannelMessageQueue _messages;

    private RedisJobEvents(ChannelMessageQueue messages) => _messages = messages;

    /// <summary>Subscribes; messages published from here on are kept until read.</summary>
    public static async Task<RedisJobEvents> SubscribeAsync(RedisCalls calls, RedisKeys keys, string id, CancellationToken ct) =>
        new(await calls.RunAsync(_ => calls.Subscriber.SubscribeAsync(RedisChannel.Literal(keys.Events(id))), ct).ConfigureAwait(false));

    /// <summary>Completes at the next change event, or at once when some came since the last call.</summary>
    public async Task NextAsync(CancellationToken ct)
    {
        await _messages.ReadAsync(ct).ConfigureAwait(false);
        while (_messages.TryRead(out _))
        {
            // Many progress events may have piled up; one read of the job covers them all.
        }
    }

    public async ValueTask DisposeAsync() => await _messages.UnsubscribeAsync().ConfigureAwait(false);
}
