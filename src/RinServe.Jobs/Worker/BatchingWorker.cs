using System.Diagnostics;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using RinServe.Diffusion;

namespace RinServe.Jobs;

/// <summary>
/// Takes up to <c>Workers:MaxBatch</c> jobs of one model, runs each group of compatible jobs
/// (equal <see cref="SamplerSettings"/>) as one sampler batch, reports progress per step and
/// stores the results. On shutdown it finishes the batch it runs and hands back jobs it holds
/// but has not started. With a durable queue (Redis) it stops taking jobs as soon as the process
/// starts stopping (other workers take them); with the in-process queue it keeps working while
/// the host drains, and stops when the host stops it.
/// </summary>
public sealed class BatchingWorker(
    IJobQueue queue,
    IImageGenerator generator,
    IOptions<WorkersOptions> options,
    JobMetrics metrics,
    TimeProvider time,
    IHostApplicationLifetime lifetime,
    IStepGate gate,
    ILogger<BatchingWorker> logger) : BackgroundService
{
    private readonly WorkersOptions _options = options.Value;

    /// <summary>Fires when the host's shutdown timeout runs out while a batch still runs.</summary>
    private readonly CancellationTokenSource _abort = new();

    /// <summary>How long, after the shutdown timeout, the worker waits for a batch to stop at its next step and hand back its jobs.</summary>
    private static readonly TimeSpan AbortGrace = TimeSpan.FromSeconds(5);

    /// <summary>This worker's consumer name in the Redis consumer group; unique per process.</summary>
    public string Consumer { get; } = $"{Environment.MachineName}-{Environment.ProcessId}-{JobId.New()[..6]}";

    protected override async Task ExecuteAsync(CancellationToken hostStopping)
    {
        using var stopTaking = queue.Durable
            ? CancellationTokenSource.CreateLinkedTokenSource(hostStopping, lifetime.ApplicationStopping)
            : CancellationTokenSource.CreateLinkedTokenSource(hostStopping);
        var stoppingToken = stopTaking.Token;
        var models = generator.Models;
        if (models.Count == 0)
        {
            logger.LogWarning("No models loaded: the worker has nothing to run");
            return;
        }
        logger.LogInformation("Worker {Consumer} serving {Models}, MaxBatch {MaxBatch}", Consumer, string.Join(", ", models), _options.MaxBatch);
        var next = 0;
        while (!stoppingToken.IsCancellationRequested)
        {
            var model = models[next++ % models.Count];
            IReadOnlyList<LeasedJob> taken;
            try
            {
                // With one model, wait on it; with several, look at each briefly in turn.
                var firstWait = models.Count == 1 ? TimeSpan.FromSeconds(1) : _options.PollInterval;
                taken = await queue.TakeAsync(model, Consumer, _options.MaxBatch, firstWait, _options.MaxBatchDelay, stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception ex)
            {
                logger.LogWarning(ex, "Taking jobs of model {Model} failed; trying again shortly", model);
                await DelayQuietly(_options.ErrorBackoff, stoppingToken);
                continue;
            }
            var batches = BatchPlan.Split(taken, _options.MaxBatchRows);
            for (var b = 0; b < batches.Count; b++)
            {
                if (stoppingToken.IsCancellationRequested)
                {
                    await HandBackAsync(batches.Skip(b).SelectMany(x => x));
                    break;
                }
                await RunBatchAsync(model, batches[b][0].Job.Spec.Settings, batches[b]);
            }
        }
    }

    /// <summary>
    /// A running batch is finished (no work thrown away) as long as the host's shutdown timeout allows. When that runs
    /// out first, the batch stops at its next step and its jobs go back to the queue, instead of the process exiting
    /// under a batch that still uses the model and the connection.
    /// </summary>
    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await using var timedOut = cancellationToken.Register(_abort.Cancel);
        await base.StopAsync(cancellationToken);
        if (ExecuteTask is { IsCompleted: false } running)
        {
            await Task.WhenAny(running, Task.Delay(AbortGrace, CancellationToken.None));
        }
    }

    public override void Dispose()
    {
        _abort.Dispose();
        base.Dispose();
    }

    private async Task RunBatchAsync(string model, SamplerSettings settings, IReadOnlyList<LeasedJob> jobs)
    {
        var running = new List<LeasedJob>(jobs.Count);
        foreach (var job in jobs)
        {
            try
            {
                if (await queue.MarkRunningAsync(job))
                {
                    running.Add(job);
                    metrics.JobStarted(model, time.GetUtcNow() - job.Job.CreatedAt);
                }
            }
            catch (Exception ex)
            {
                // Left pending: it is reclaimed after the visibility timeout.
                logger.LogWarning(ex, "Could not start job {JobId}", job.Id);
            }
        }
        if (running.Count == 0)
        {
            return;
        }
        var ids = string.Join(",", running.Select(j => j.Id));
        using var scope = logger.BeginScope(new Dictionary<string, object> { ["JobId"] = ids, ["Model"] = model });
        var requests = running.SelectMany(j => j.Job.Spec.ImageRequests()).ToList();
        // Not linked to shutdown: a batch that started is finished, so no work is thrown away, unless the
        // host's shutdown timeout runs out first (StopAsync).
        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(_abort.Token);
        using var stopHeartbeat = new CancellationTokenSource();
        var previews = new BatchPreviews(running);
        var heartbeat = new BatchHeartbeat(queue, Consumer, _options.HeartbeatInterval, time, logger)
            .RunAsync(running, previews, cancel, stopHeartbeat.Token);
        var watch = Stopwatch.StartNew();
        try
        {
            logger.LogInformation("Running batch of {Jobs} jobs, {Images} images, {Steps} steps", running.Count, requests.Count, settings.Steps);
            var images = await Task.Run(() => generator.Generate(model, settings, requests, step =>
            {
                for (var j = 0; j < running.Count; j++)
                {
                    queue.ReportProgress(running[j], step.Step, previews.Claim(j));
                }

                gate.AfterStep(running, step.Step, cancel.Token);
            }, previews, cancel.Token), CancellationToken.None);
            watch.Stop();
            metrics.BatchFinished(model, images.Count, settings.Steps, watch.Elapsed);
            var offset = 0;
            foreach (var job in running)
            {
                var mine = images.Skip(offset).Take(job.Job.Spec.Count).ToList();
                offset += job.Job.Spec.Count;
                if (!await CompleteAsync(job, mine))
                {
                    logger.LogInformation("Job {JobId} had already finished (canceled or completed elsewhere); result dropped", job.Id);
                }
            }
        }
        catch (OperationCanceledException) when (_abort.IsCancellationRequested)
        {
            logger.LogWarning("Shutdown timeout reached mid-batch: stopped at a step boundary; handing its jobs back");
            await HandBackAsync(running);
        }
        catch (OperationCanceledException) when (cancel.IsCancellationRequested)
        {
            logger.LogInformation("Batch canceled at a step boundary");
            foreach (var job in running)
            {
                await AcknowledgeQuietly(job);
            }
        }
        catch (Exception ex)
        {
            logger.LogError(ex, "Batch failed");
            foreach (var job in running)
            {
                metrics.JobFailed(model, "exception");
                try
                {
                    await queue.FailAsync(job, ex.Message);
                }
                catch (Exception failEx)
                {
                    logger.LogWarning(failEx, "Could not record the failure of job {JobId}; it will be reclaimed", job.Id);
                }
            }
        }
        finally
        {
            await stopHeartbeat.CancelAsync();
            await heartbeat;
        }
    }

    private async Task<bool> CompleteAsync(LeasedJob job, IReadOnlyList<GeneratedImage> images)
    {
        // The result is worth a few tries: Redis may blink. If it stays away, the job is reclaimed and rerun.
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return await queue.CompleteAsync(job, images);
            }
            catch (QueueUnavailableException ex) when (attempt < 5)
            {
                logger.LogWarning(ex, "Storing the result of job {JobId} failed (attempt {Attempt})", job.Id, attempt);
                await Task.Delay(_options.ErrorBackoff);
            }
            catch (QueueUnavailableException ex)
            {
                logger.LogError(ex, "Gave up storing the result of job {JobId}; another worker will rerun it", job.Id);
                return false;
            }
        }
    }

    private async Task HandBackAsync(IEnumerable<LeasedJob> jobs)
    {
        foreach (var job in jobs)
        {
            try
            {
                await queue.ReleaseAsync(job);
                logger.LogInformation("Handed job {JobId} back to the queue on shutdown", job.Id);
            }
            catch (Exception ex)
            {
                logger.LogWarning(ex, "Could not hand back job {JobId}; it will be reclaimed", job.Id);
            }
        }
    }

    private async Task AcknowledgeQuietly(LeasedJob job)
    {
        try
        {
            await queue.AcknowledgeAsync(job);
        }
        catch (Exception ex)
        {
            logger.LogWarning(ex, "Could not acknowledge canceled job {JobId}", job.Id);
        }
    }

    private async Task DelayQuietly(TimeSpan delay, CancellationToken ct)
    {
        try
        {
            await Task.Delay(delay, time, ct);
        }
        catch (OperationCanceledException)
        {
        }
    }
}
