using Microsoft.Extensions.Options;
using RinServe.Jobs;
using RinServe.Onnx;

namespace RinServe.WebApi.Hosting;

/// <summary>
/// Refreshes the queue depth gauge on a timer, so every process (an API pod that only enqueues, a
/// worker that is idle) exports a current value for dashboards and autoscalers.
/// </summary>
public sealed class QueueDepthSampler(IJobQueue queue, ModelRegistry registry, IOptions<JobsOptions> options, TimeProvider time, ILogger<QueueDepthSampler> logger)
    : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.Value.DepthSampleInterval, time);
        try
        {
            do
            {
                foreach (var model in registry.Models)
                {
                    try
                    {
                        // DepthAsync records the value in the gauge.
                        await queue.DepthAsync(model.Spec.Name, stoppingToken);
                    }
                    catch (QueueUnavailableException ex)
                    {
                        logger.LogDebug(ex, "Queue depth not sampled: queue unavailable");
                    }
                }
            }
            while (await timer.WaitForNextTickAsync(stoppingToken));
        }
        catch (OperationCanceledException)
        {
        }
    }
}
