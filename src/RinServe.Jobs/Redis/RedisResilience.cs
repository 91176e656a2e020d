using Polly;
using Polly.CircuitBreaker;
using Polly.Retry;
using Polly.Timeout;
using StackExchange.Redis;

namespace RinServe.Jobs;

/// <summary>The one place where the resilience around Redis calls is composed.</summary>
public static class RedisResilience
{
    public const string PipelineName = "redis";

    /// <summary>
    /// Outer to inner: retry with jittered exponential backoff, circuit breaker, timeout per attempt.
    /// The breaker sits inside the retry so an open circuit ends the retries at once (fast 503s while
    /// Redis is down), and half-opens by itself so the service recovers when Redis is back.
    /// </summary>
    public static void Configure(ResiliencePipelineBuilder builder, JobsOptions options)
    {
        var transient = new PredicateBuilder()
            .Handle<RedisConnectionException>()
            .Handle<RedisTimeoutException>()
            .Handle<TimeoutRejectedException>();
        if (options.RedisRetries > 0)
        {
            builder.AddRetry(new RetryStrategyOptions
            {
                ShouldHandle = transient,
                MaxRetryAttempts = options.RedisRetries,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                Delay = options.RedisRetryDelay,
            });
        }
        builder
            .AddCircuitBreaker(new CircuitBreakerStrategyOptions
            {
                ShouldHandle = transient,
                FailureRatio = 0.5,
                MinimumThroughput = 4,
                SamplingDuration = TimeSpan.FromSeconds(10),
                BreakDuration = options.RedisBreakDuration,
            })
            .AddTimeout(options.RedisAttemptTimeout);
    }

    /// <summary>True for the failures that mean "Redis cannot be reached now", as opposed to a bug.</summary>
    public static bool IsUnavailable(Exception ex) =>
        ex is RedisConnectionException or RedisTimeoutException or BrokenCircuitException or TimeoutRejectedException;
}
