using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using Polly;
using StackExchange.Redis;

namespace RinServe.Jobs;

public static class JobsServiceCollectionExtensions
{
    /// <summary>
    /// Registers the queue: Redis when <paramref name="redisConnection"/> is set, else the in-process one,
    /// with validated <see cref="JobsOptions"/> and <see cref="WorkersOptions"/>.
    /// </summary>
    public static IServiceCollection AddJobQueue(this IServiceCollection services, IConfiguration configuration, string? redisConnection)
    {
        services.AddOptions<JobsOptions>().Bind(configuration.GetSection(JobsOptions.Section)).ValidateDataAnnotations().ValidateOnStart();
        services.AddOptions<WorkersOptions>().Bind(configuration.GetSection(WorkersOptions.Section)).ValidateDataAnnotations().ValidateOnStart();
        services.AddMetrics();
        services.AddSingleton<JobMetrics>();
        services.AddSingleton(TimeProvider.System);
        if (string.IsNullOrWhiteSpace(redisConnection))
        {
            services.AddSingleton<IJobQueue, InProcessJobQueue>();
            return services;
        }
        services.AddSingleton<IConnectionMultiplexer>(_ =>
        {
            var config = ConfigurationOptions.Parse(redisConnection);
            // Start even when Redis is down (the API answers 503 until it is back), and fail calls
            // at once while disconnected instead of queueing them, so 503s are fast.
            config.AbortOnConnectFail = false;
            config.BacklogPolicy = BacklogPolicy.FailFast;
            return ConnectionMultiplexer.Connect(config);
        });
        services.AddResiliencePipeline(RedisResilience.PipelineName, (builder, context) =>
            RedisResilience.Configure(builder, context.ServiceProvider.GetRequiredService<IOptions<JobsOptions>>().Value));
        services.AddSingleton<IJobQueue, RedisJobQueue>();
        return services;
    }

    /// <summary>Registers the batching worker; the host must also register an <see cref="IImageGenerator"/>.</summary>
    public static IServiceCollection AddBatchingWorker(this IServiceCollection services)
    {
        services.AddOptions<TestingOptions>().BindConfiguration(TestingOptions.Section);
        services.TryAddSingleton<IStepGate, FifoStepGate>();
        services.AddHostedService<BatchingWorker>();
        return services;
    }
}
