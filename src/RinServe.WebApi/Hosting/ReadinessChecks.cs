using Microsoft.Extensions.Diagnostics.HealthChecks;
using RinServe.Jobs;
using RinServe.Onnx;

namespace RinServe.WebApi.Hosting;

/// <summary>Ready when at least one model is loaded.</summary>
public sealed class ModelsReadyCheck(ModelRegistry registry) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken ct = default) =>
        Task.FromResult(registry.Models.Count > 0
            ? HealthCheckResult.Healthy($"{registry.Models.Count} model(s): {string.Join(", ", registry.Models.Select(m => m.Spec.Name))}")
            : HealthCheckResult.Unhealthy("no model loaded"));
}

/// <summary>Ready when the queue backend answers and the instance is not draining for shutdown.</summary>
public sealed class QueueReadyCheck(IJobQueue queue, ShutdownDrain shutdown) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken ct = default)
    {
        if (shutdown.Draining)
        {
            return HealthCheckResult.Unhealthy("shutting down");
        }
        try
        {
            await queue.PingAsync(ct);
            return HealthCheckResult.Healthy();
        }
        catch (QueueUnavailableException ex)
        {
            return HealthCheckResult.Unhealthy("queue backend unreachable", ex);
        }
    }
}
