using Microsoft.Extensions.Options;
using RinServe.Jobs;

namespace RinServe.WebApi.Hosting;

/// <summary>
/// What a SIGTERM does before the web server stops listening (it runs in <see cref="IHostedLifecycleService.StoppingAsync"/>,
/// which the host calls before it stops any hosted service, Kestrel included):
/// <list type="bullet">
/// <item>Redis queue (durable): nothing to wait for. Watchers (<c>Prefer: wait</c>, SSE) end at once so they do not hold
/// the server's drain; their jobs are in Redis and other instances finish them. The worker stops taking jobs at the
/// same moment (<see cref="BatchingWorker"/>) and finishes only the batch it runs.</item>
/// <item>In-process queue: its jobs die with the process, so the instance drains: it refuses new jobs (503 with
/// Retry-After), reports not ready, keeps running and serving what it accepted until nothing is queued or running,
/// then keeps serving the results for <see cref="RinServeOptions.ShutdownResultGrace"/>, all within
/// <see cref="RinServeOptions.ShutdownDrainTimeout"/>. Jobs still unfinished then are lost, and the log says how many.</item>
/// </list>
/// </summary>
public sealed class ShutdownDrain(
    IJobQueue queue, IOptions<RinServeOptions> options, TimeProvider time, ILogger<ShutdownDrain> logger) : IHostedLifecycleService, IDisposable
{
    private readonly CancellationTokenSource _stopWatching = new();

    /// <summary>Canceled when long polls and event streams should end and answer with what they have.</summary>
    public CancellationToken StopWatching => _stopWatching.Token;

    /// <summary>True from the start of a drain: readiness reports it so load balancers send no new work.</summary>
    public bool Draining { get; private set; }

    public async Task StoppingAsync(CancellationToken cancellationToken)
    {
        Draining = true;
        if (queue is InProcessJobQueue local)
        {
            await DrainAsync(local, cancellationToken);
        }
        await _stopWatching.CancelAsync();
    }

    private async Task DrainAsync(InProcessJobQueue local, CancellationToken ct)
    {
        local.StopAccepting();
        var settings = options.Value;
        var start = time.GetTimestamp();
        TimeSpan Elapsed() => time.GetElapsedTime(start);
        var accepted = local.Unfinished();
        if (accepted == 0)
        {
            return;
        }
        logger.LogInformation("Shutting down: taking no new jobs; finishing the {Count} accepted (in-process queue, up to {Timeout})",
            accepted, settings.ShutdownDrainTimeout);
        try
        {
            while (local.Unfinished() > 0 && Elapsed() < settings.ShutdownDrainTimeout)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(100), time, ct);
            }
            var left = local.Unfinished();
            if (left > 0)
            {
                logger.LogError("Shutdown drain timed out after {Elapsed}: {Count} accepted job(s) are lost with this process. " +
                    "Use Redis (RinServe:Redis) for jobs that outlive a process", Elapsed(), left);
                return;
            }
            var grace = settings.ShutdownDrainTimeout - Elapsed();
            grace = grace < settings.ShutdownResultGrace ? grace : settings.ShutdownResultGrace;
            logger.LogInformation("Every accepted job finished after {Elapsed}; serving results for {Grace} more", Elapsed(), grace);
            if (grace > TimeSpan.Zero)
            {
                await Task.Delay(grace, time, ct);
            }
        }
        catch (OperationCanceledException)
        {
            logger.LogWarning("Shutdown drain cut short by the host's shutdown timeout; {Count} job(s) unfinished", local.Unfinished());
        }
    }

    public Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public void Dispose() => _stopWatching.Dispose();
}
