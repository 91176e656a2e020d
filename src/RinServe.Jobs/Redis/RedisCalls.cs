using Polly;
using StackExchange.Redis;

namespace RinServe.Jobs;

/// <summary>
/// Runs Redis calls through the resilience pipeline (<see cref="RedisResilience"/>): an unreachable Redis becomes
/// <see cref="QueueUnavailableException"/>, which the API answers with 503.
/// </summary>
internal sealed class RedisCalls(IConnectionMultiplexer redis, ResiliencePipeline pipeline, TimeSpan retryAfter)
{
    /// <summary>For fire-and-forget commands, which bypass the pipeline.</summary>
    public IDatabase Db => redis.GetDatabase();

    public ISubscriber Subscriber => redis.GetSubscriber();

    public async Task<T> RunAsync<T>(Func<IDatabase, Task<T>> operation, CancellationToken ct)
    {
        try
        {
            return await pipeline.ExecuteAsync(
                static async (state, token) => await state.operation(state.db).WaitAsync(token).ConfigureAwait(false),
                (operation, db: Db), ct).ConfigureAwait(false);
        }
        catch (Exception ex) when (RedisResilience.IsUnavailable(ex))
        {
            throw new QueueUnavailableException($"Redis is unreachable: {ex.Message}", retryAfter, ex);
        }
    }

    public async Task RunAsync(Func<IDatabase, Task> operation, CancellationToken ct) =>
        await RunAsync(async db => { await operation(db).ConfigureAwait(false); return true; }, ct).ConfigureAwait(false);

    /// <summary>Runs a <see cref="RedisScripts"/> script with its named parameters; returns what the script returns.</summary>
    public Task<RedisResult> ScriptAsync(LuaScript script, object parameters, CancellationToken ct) =>
        RunAsync(db => db.ScriptEvaluateAsync(script, parameters), ct);
}
