using System.Collections.Concurrent;
using System.Diagnostics;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using RinServe.Diffusion;

namespace RinServe.Jobs;

/// <summary>
/// The worker: iteration-level batching over every loaded model. Each image of a running job is a row; at every step
/// boundary finished and canceled jobs leave, and taken jobs join (up to <c>Workers:MaxBatch</c> jobs and
/// <c>Workers:MaxBatchRows</c> network rows per model), each at its own first step with its own sampler, steps,
/// schedule and guidance. Then one model makes one step, one network call over all its rows: the busy model charged
/// least sampler time (<see cref="FairShare"/>), so models interleave step by step and a cheap request is never stuck
/// behind another model's trajectories. A heartbeat keeps every held job's lease, learns of cancels and previews.
/// On shutdown it finishes the jobs it runs and hands back those it holds but has not started. With a durable queue
/// (Redis) it stops taking jobs as soon as the process starts stopping (other workers take them); with the in-process
/// queue it keeps working while the host drains, and stops when the host stops it.
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

    /// <summary>Fires when the host's shutdown timeout runs out while jobs still run.</summary>
    private readonly CancellationTokenSource _abort = new();

    /// <summary>Every job this worker holds (waiting or running), for the heartbeat.</summary>
    private readonly ConcurrentDictionary<string, HeldJob> _held = new(StringComparer.Ordinal);

    private readonly FairShare _share = new(options.Value.ShortWorkFirst);

    /// <summary>How long, after the shutdown timeout, the worker waits for its loop to stop at the next step and hand back its jobs.</summary>
    private static readonly TimeSpan AbortGrace = TimeSpan.FromSeconds(5);

    /// <summary>No take before this time after a failed one (the queue is away): the running rows go on meanwhile.</summary>
    private DateTimeOffset _takeAfter;

    private IReadOnlyList<string> _models = [];

    /// <summary>This worker's consumer name in the Redis consumer group; unique per process.</summary>
    public string Consumer { get; } = $"{Environment.MachineName}-{Environment.ProcessId}-{JobId.New()[..6]}";

    protected override async Task ExecuteAsync(CancellationToken hostStopping)
    {
        using var stopTaking = queue.Durable
            ? CancellationTokenSource.CreateLinkedTokenSource(hostStopping, lifetime.ApplicationStopping)
            : CancellationTokenSource.CreateLinkedTokenSource(hostStopping);
        var stop = stopTaking.Token;
        if (generator.Models.Count == 0)
        {
            logger.LogWarning("No models loaded: the worker has nothing to run");
            return;
        }
        logger.LogInformation("Worker {Consumer} serving {Models}: up to {MaxBatch} jobs and {MaxRows} rows per model, joining at step boundaries",
            Consumer, string.Join(", ", generator.Models), _options.MaxBatch, _options.MaxBatchRows);
        _models = generator.Models;
        var lanes = generator.Models.Select(m => new ModelLane(m, generator.Open(m))).ToList();
        using var stopHeartbeat = new CancellationTokenSource();
        var heartbeat = HeartbeatAsync(stopHeartbeat.Token);
        try
        {
            while (true)
            {
                if (!stop.IsCancellationRequested)
                {
                    await TakeAsync(lanes, stop);
                }
                else
                {
                    await HandBackAsync(lanes, l => l.Waiting);
                }
                foreach (var lane in lanes)
                {
                    await DropCanceledAsync(lane);
                    await StartWaitingAsync(lane);
                    _share.SetBusy(lane.Model, lane.Busy);
                    _share.SetWorkLeft(lane.Model, lane.WorkLeft);
                }
                if (_abort.IsCancellationRequested)
                {
                    logger.LogWarning("Shutdown timeout reached: stopped at a step boundary; handing the running jobs back");
                    await HandBackAsync(lanes, l => [.. l.Running, .. l.Waiting]);
                    break;
                }
                if (_share.Next() is not { } next)
                {
                    if (stop.IsCancellationRequested)
                    {
                        break;
                    }
                    continue;
                }
                var stepping = lanes.First(l => l.Model == next);
                await StepAsync(stepping, RowsPerStep(stepping, lanes));
            }
        }
        finally
        {
            await stopHeartbeat.CancelAsync();
            await heartbeat;
            lanes.ForEach(l => l.Dispose());
        }
    }

    /// <summary>
    /// A running job is finished (no work thrown away) as long as the host's shutdown timeout allows. When that runs out
    /// first, the loop stops at its next step and the jobs go back to the queue, instead of the process exiting under a
    /// step that still uses the model and the connection.
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

    /// <summary>
    /// A look at every model with room, without waiting, so a new job joins at the next step boundary. When idle, first
    /// a wait on all models at once (<see cref="IJobQueue.WaitForWorkAsync"/>); then each model's take gathers more for
    /// <c>Workers:MaxBatchDelay</c> after its first job (in process), so a burst starts together.
    /// </summary>
    private async Task TakeAsync(List<ModelLane> lanes, CancellationToken stop)
    {
        if (time.GetUtcNow() < _takeAfter)
        {
            if (lanes.Any(l => l.Holds))
            {
                return;
            }
            await DelayQuietly(_takeAfter - time.GetUtcNow(), stop);
        }
        var idle = !lanes.Any(l => l.Holds);
        if (idle)
        {
            try
            {
                await queue.WaitForWorkAsync(_models, TimeSpan.FromSeconds(1), stop);
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex)
            {
                logger.LogWarning(ex, "Waiting for jobs failed; trying again shortly");
                _takeAfter = time.GetUtcNow() + _options.ErrorBackoff;
                return;
            }
        }
        foreach (var lane in lanes)
        {
            var room = lane.Room(_options.MaxBatch, _options.MaxBatchRows);
            if (room == 0)
            {
                continue;
            }
            try
            {
                var taken = await queue.TakeAsync(lane.Model, Consumer, room, TimeSpan.Zero, idle ? _options.MaxBatchDelay : TimeSpan.Zero, stop);
                foreach (var lease in taken)
                {
                    var job = new HeldJob(lease, _abort.Token);
                    _held[job.Id] = job;
                    lane.Waiting.Add(job);
                }
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex)
            {
                logger.LogWarning(ex, "Taking jobs of model {Model} failed; trying again shortly", lane.Model);
                _takeAfter = time.GetUtcNow() + _options.ErrorBackoff;
                return;
            }
        }
    }

    /// <summary>Starts the waiting jobs that fit, first come first (a big one is not overtaken forever by small ones).</summary>
    private async Task StartWaitingAsync(ModelLane lane)
    {
        while (lane.Waiting.Count > 0 && lane.Fits(lane.Waiting[0], _options.MaxBatch, _options.MaxBatchRows))
        {
            var job = lane.Waiting[0];
            lane.Waiting.RemoveAt(0);
            try
            {
                if (!await queue.MarkRunningAsync(job.Lease))
                {
                    Forget(job); // canceled or expired while it waited
                    continue;
                }
            }
            catch (Exception ex)
            {
                // Left pending: it is reclaimed after the visibility timeout.
                logger.LogWarning(ex, "Could not start job {JobId}", job.Id);
                Forget(job);
                continue;
            }
            try
            {
                job.Start(lane.Engine);
            }
            catch (ArgumentException ex)
            {
                logger.LogError(ex, "Job {JobId} does not fit model {Model}", job.Id, lane.Model);
                await FailAsync(lane.Model, job, ex.Message);
                continue;
            }
            metrics.JobStarted(lane.Model, time.GetUtcNow() - job.Lease.Job.CreatedAt);
            logger.LogInformation("Job {JobId} joins model {Model}: {Images} images, {Steps} {Sampler} steps, {Running} jobs running",
                job.Id, lane.Model, job.Spec.Count, job.Spec.Steps, job.Spec.Sampler, lane.Running.Count + 1);
            lane.Running.Add(job);
        }
    }

    /// <summary>
    /// While another model has rows to step, a step of this one carries only the jobs whose rows fit
    /// <c>Workers:StepQuantum</c> of its measured time per row (at least one job, in turn): a 64 px request then waits
    /// for one short step of a 1024 px model, not for a step of all its jobs. Alone, or with the least work left of the
    /// busy models (the short one the quantum is there for), a model steps all its rows at once.
    /// </summary>
    private int RowsPerStep(ModelLane lane, List<ModelLane> lanes) =>
        lane.SecondsPerRow > 0 && lanes.Any(l => l != lane && l.Busy) && !_share.LeastWorkLeft(lane.Model)
            ? Math.Max(1, (int)(_options.StepQuantum.TotalSeconds / lane.SecondsPerRow))
            : int.MaxValue;

    /// <summary>One step of one model's rows (all, or as many as <paramref name="maxRows"/> allows); then progress, finished jobs out.</summary>
    private async Task StepAsync(ModelLane lane, int maxRows)
    {
        var rows = lane.Gather(maxRows);
        TimeSpan elapsed;
        try
        {
            elapsed = await Task.Run(() =>
            {
                var started = time.GetTimestamp();
                lane.Engine.Step(rows, lane);
                var took = time.GetElapsedTime(started);
                foreach (var job in lane.Stepped)
                {
                    queue.ReportProgress(job.Lease, job.StepsDone, job.ClaimPreview());
                    gate.AfterStep(job.Lease, job.StepsDone, job.Released);
                }
                return took;
            }, CancellationToken.None);
        }
        catch (Exception ex)
        {
            logger.LogError(ex, "A step of model {Model} failed; failing its {Jobs} running jobs", lane.Model, lane.Running.Count);
            var failed = lane.Running.ToList();
            lane.Running.Clear();
            foreach (var job in failed)
            {
                await FailAsync(lane.Model, job, ex.Message);
            }
            return;
        }
        _share.Charge(lane.Model, elapsed);
        lane.Observe(elapsed, lane.SteppedRows);
        metrics.StepFinished(lane.Model, rows.Count, elapsed);
        for (var j = lane.Running.Count - 1; j >= 0; j--)
        {
            var job = lane.Running[j];
            if (job.Done && !job.IsCanceled)
            {
                lane.Running.RemoveAt(j);
                await CompleteAsync(lane.Model, job);
            }
        }
    }

    private async Task CompleteAsync(string model, HeldJob job)
    {
        try
        {
            var images = job.Images();
            metrics.JobFinished(model, images.Count, job.Running.Elapsed);
            // The result is worth a few tries: Redis may blink. If it stays away, the job is reclaimed and rerun.
            for (var attempt = 1; ; attempt++)
            {
                try
                {
                    if (!await queue.CompleteAsync(job.Lease, images))
                    {
                        logger.LogInformation("Job {JobId} had already finished (canceled or completed elsewhere); result dropped", job.Id);
                    }
                    return;
                }
                catch (QueueUnavailableException ex) when (attempt < 5)
                {
                    logger.LogWarning(ex, "Storing the result of job {JobId} failed (attempt {Attempt})", job.Id, attempt);
                    await Task.Delay(_options.ErrorBackoff);
                }
                catch (QueueUnavailableException ex)
                {
                    logger.LogError(ex, "Gave up storing the result of job {JobId}; another worker will rerun it", job.Id);
                    return;
                }
            }
        }
        finally
        {
            Forget(job);
        }
    }

    /// <summary>Canceled jobs leave at the step boundary; the others in the model go on.</summary>
    private async Task DropCanceledAsync(ModelLane lane)
    {
        foreach (var list in new[] { lane.Running, lane.Waiting })
        {
            for (var j = list.Count - 1; j >= 0; j--)
            {
                var job = list[j];
                if (!job.IsCanceled)
                {
                    continue;
                }
                list.RemoveAt(j);
                logger.LogInformation("Job {JobId} canceled: it leaves at step {Step}", job.Id, job.StepsDone);
                try
                {
                    await queue.AcknowledgeAsync(job.Lease);
                }
                catch (Exception ex)
                {
                    logger.LogWarning(ex, "Could not acknowledge canceled job {JobId}", job.Id);
                }
                Forget(job);
            }
        }
    }

    private async Task FailAsync(string model, HeldJob job, string error)
    {
        metrics.JobFailed(model, "exception");
        try
        {
            await queue.FailAsync(job.Lease, error);
        }
        catch (Exception ex)
        {
            logger.LogWarning(ex, "Could not record the failure of job {JobId}; it will be reclaimed", job.Id);
        }
        Forget(job);
    }

    private async Task HandBackAsync(List<ModelLane> lanes, Func<ModelLane, List<HeldJob>> which)
    {
        foreach (var lane in lanes)
        {
            var jobs = which(lane).ToList();
            lane.Waiting.RemoveAll(jobs.Contains);
            lane.Running.RemoveAll(jobs.Contains);
            foreach (var job in jobs)
            {
                try
                {
                    await queue.ReleaseAsync(job.Lease);
                    logger.LogInformation("Handed job {JobId} back to the queue on shutdown", job.Id);
                }
                catch (Exception ex)
                {
                    logger.LogWarning(ex, "Could not hand back job {JobId}; it will be reclaimed", job.Id);
                }
                Forget(job);
            }
        }
    }

    private void Forget(HeldJob job)
    {
        _held.TryRemove(job.Id, out _);
        job.Dispose();
    }

    /// <summary>
    /// Every <c>Workers:HeartbeatInterval</c>: renews the hold on every held job (so no other worker reclaims them),
    /// passes on the previews their watchers asked for, and marks canceled ones, which leave at the next step boundary.
    /// </summary>
    private async Task HeartbeatAsync(CancellationToken stop)
    {
        using var timer = new PeriodicTimer(_options.HeartbeatInterval, time);
        try
        {
            while (await timer.WaitForNextTickAsync(stop))
            {
                var jobs = _held.Values.ToList();
                if (jobs.Count == 0)
                {
                    continue;
                }
                try
                {
                    var beat = await queue.HeartbeatAsync(Consumer, [.. jobs.Select(j => j.Lease)], stop);
                    foreach (var job in jobs)
                    {
                        job.PreviewEvery = beat.PreviewEvery.GetValueOrDefault(job.Id);
                        if (beat.Canceled.Contains(job.Id))
                        {
                            job.Cancel();
                        }
                    }
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    logger.LogWarning(ex, "Heartbeat failed");
                }
            }
        }
        catch (OperationCanceledException)
        {
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
