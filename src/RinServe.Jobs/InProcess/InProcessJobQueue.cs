using System.Globalization;
using System.Runtime.CompilerServices;
using Microsoft.Extensions.Options;
using RinServe.Diffusion;

namespace RinServe.Jobs;

/// <summary>
/// The embedded backend used when <c>RinServe:Redis</c> is empty: one process serves and works.
/// One lock guards the job table (jobs are few and short); a Channel per model carries the ids in
/// order. Visibility timeouts and reclaim have no meaning here: a dead worker is a dead process.
/// </summary>
public sealed class InProcessJobQueue(IOptions<JobsOptions> options, JobMetrics metrics, TimeProvider time) : IJobQueue
{
    private readonly JobsOptions _options = options.Value;
    private readonly Lock _gate = new();
    private readonly InProcessJobTable _jobs = new();
    private readonly InProcessIdempotency _idempotency = new();
    private readonly InProcessModelQueues _queues = new();
    private readonly System.Threading.Channels.Channel<string> _webhooks = System.Threading.Channels.Channel.CreateUnbounded<string>();
    private bool _accepting = true;

    public bool Durable => false;

    /// <summary>From now on every enqueue answers <see cref="EnqueueStatus.ShuttingDown"/>; jobs already accepted still run.</summary>
    public void StopAccepting()
    {
        lock (_gate)
        {
            _accepting = false;
        }
    }

    /// <summary>Jobs queued or running, of every model: what a shutdown drain waits for.</summary>
    public int Unfinished()
    {
        lock (_gate)
        {
            return _jobs.Unfinished();
        }
    }

    public Task<EnqueueResult> EnqueueAsync(JobSpec spec, IdempotencyClaim? idempotency, CancellationToken ct = default)
    {
        var now = time.GetUtcNow();
        JobRecord record;
        lock (_gate)
        {
            _jobs.Sweep(now);
            _idempotency.Sweep(now);
            if (idempotency is not null && _idempotency.TryGet(spec.Owner, idempotency, out var seenId, out var fingerprint)
                && _jobs.TryGet(seenId, out var earlier))
            {
                var status = fingerprint == idempotency.Fingerprint ? EnqueueStatus.Existing : EnqueueStatus.IdempotencyConflict;
                return Task.FromResult(new EnqueueResult(status, _jobs.WithPosition(earlier)));
            }
            if (!_accepting)
            {
                return Task.FromResult(new EnqueueResult(EnqueueStatus.ShuttingDown, null, _options.QueueFullRetryAfter));
            }
            var depth = _jobs.CountActive(spec.Model);
            if (depth >= _options.MaxQueueLength)
            {
                return Task.FromResult(new EnqueueResult(EnqueueStatus.QueueFull, null, _options.QueueFullRetryAfter));
            }
            if (spec.Owner is { } owner && _jobs.CountActiveOf(owner) >= _options.MaxJobsPerKey)
            {
                return Task.FromResult(new EnqueueResult(EnqueueStatus.KeyFull, null, _options.QueueFullRetryAfter));
            }
            record = new JobRecord(JobId.New(), spec, JobState.Queued, now, null, null, 0, null, null, 0, 0);
            var entry = _jobs.Add(record, now + _options.JobTtl);
            if (idempotency is not null)
            {
                _idempotency.Remember(spec.Owner, idempotency, record.Id, now + _options.ResultTtl);
            }
            metrics.SetDepth(spec.Model, depth + 1);
            record = _jobs.WithPosition(entry);
        }
        _queues.Add(spec.Model, record.Id);
        return Task.FromResult(new EnqueueResult(EnqueueStatus.Created, record));
    }

    public Task<JobRecord?> GetAsync(string id, CancellationToken ct = default)
    {
        lock (_gate)
        {
            return Task.FromResult(Find(id) is { } entry ? _jobs.WithPosition(entry) : null);
        }
    }

    public Task<GeneratedImage?> GetImageAsync(string id, int index, CancellationToken ct = default)
    {
        lock (_gate)
        {
            var images = Find(id)?.Images;
            return Task.FromResult(images is not null && index >= 0 && index < images.Count ? images[index] : null);
        }
    }

    public Task<JobRecord?> CancelAsync(string id, CancellationToken ct = default)
    {
        lock (_gate)
        {
            if (Find(id) is not { } entry)
            {
                return Task.FromResult<JobRecord?>(null);
            }
            if (!entry.Record.IsTerminal)
            {
                Finish(entry, entry.Record with { State = JobState.Canceled });
            }
            return Task.FromResult<JobRecord?>(_jobs.WithPosition(entry));
        }
    }

    public async IAsyncEnumerable<JobRecord> WatchAsync(string id, [EnumeratorCancellation] CancellationToken ct = default)
    {
        var changed = Task.CompletedTask;
        JobRecord? Read()
        {
            lock (_gate)
            {
                var entry = Find(id);
                changed = entry?.Changed ?? Task.CompletedTask;
                return entry is null ? null : _jobs.WithPosition(entry);
            }
        }
        await foreach (var job in JobWatcher.WatchAsync(_ => Task.FromResult(Read()), token => changed.WaitAsync(token), time, ct).ConfigureAwait(false))
        {
            yield return job;
        }
    }

    public Task<bool> RequestPreviewsAsync(string id, int every, CancellationToken ct = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(every, 1);
        lock (_gate)
        {
            if (Find(id) is not { } entry || entry.Record.IsTerminal)
            {
                return Task.FromResult(false);
            }
            entry.PreviewEvery = entry.PreviewEvery == 0 ? every : Math.Min(entry.PreviewEvery, every);
            return Task.FromResult(true);
        }
    }

    public Task<JobPreview?> GetPreviewAsync(string id, CancellationToken ct = default)
    {
        lock (_gate)
        {
            return Task.FromResult(Find(id)?.Preview);
        }
    }

    public Task<long> DepthAsync(string model, CancellationToken ct = default)
    {
        lock (_gate)
        {
            long depth = _jobs.CountActive(model);
            metrics.SetDepth(model, depth);
            return Task.FromResult(depth);
        }
    }

    public Task PingAsync(CancellationToken ct = default) => Task.CompletedTask;

    public Task<IReadOnlyList<LeasedJob>> TakeAsync(
        string model, string consumer, int max, TimeSpan firstWait, TimeSpan batchDelay, CancellationToken ct = default) =>
        _queues.TakeAsync(model, max, firstWait, batchDelay, Claim, ct);

    public async Task WaitForWorkAsync(IReadOnlyList<string> models, TimeSpan maxWait, CancellationToken ct = default)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(maxWait);
        await _queues.WaitAnyAsync(models, timeout.Token).ConfigureAwait(false);
        ct.ThrowIfCancellationRequested();
    }

    /// <summary>Marks a job taken by a worker; null when it was canceled or expired while queued.</summary>
    private LeasedJob? Claim(string id)
    {
        lock (_gate)
        {
            if (Find(id) is not { Record.State: JobState.Queued } entry)
            {
                return null;
            }
            entry.Taken = true;
            return new LeasedJob(entry.Record, entry.Sequence.ToString(CultureInfo.InvariantCulture));
        }
    }

    public Task<bool> MarkRunningAsync(LeasedJob job, CancellationToken ct = default)
    {
        lock (_gate)
        {
            if (Find(job.Id) is not { } entry || entry.Record.IsTerminal)
            {
                return Task.FromResult(false);
            }
            var r = entry.Record;
            entry.Update(r with { State = JobState.Running, StartedAt = r.StartedAt ?? time.GetUtcNow(), Step = 0, Deliveries = r.Deliveries + 1 });
            return Task.FromResult(true);
        }
    }

    public void ReportProgress(LeasedJob job, int step, GeneratedImage? preview = null)
    {
        lock (_gate)
        {
            if (Find(job.Id) is { Record.State: JobState.Running } entry)
            {
                if (preview is not null)
                {
                    entry.Preview = new JobPreview(step, preview);
                }
                entry.Update(entry.Record with { Step = step, PreviewStep = preview is null ? entry.Record.PreviewStep : step });
            }
        }
    }

    public Task<HeartbeatResult> HeartbeatAsync(string consumer, IReadOnlyList<LeasedJob> jobs, CancellationToken ct = default)
    {
        lock (_gate)
        {
            var canceled = jobs.Where(j => Find(j.Id) is not { Record.State: JobState.Running or JobState.Queued })
                .Select(j => j.Id).ToHashSet(StringComparer.Ordinal);
            var previews = new Dictionary<string, int>(StringComparer.Ordinal);
            foreach (var job in jobs)
            {
                if (Find(job.Id) is { PreviewEvery: > 0 } entry)
                {
                    previews[job.Id] = entry.PreviewEvery;
                }
            }
            return Task.FromResult(new HeartbeatResult(canceled, previews));
        }
    }

    public Task<bool> CompleteAsync(LeasedJob job, IReadOnlyList<GeneratedImage> images, CancellationToken ct = default)
    {
        lock (_gate)
        {
            if (Find(job.Id) is not { } entry || entry.Record.IsTerminal)
            {
                return Task.FromResult(false);
            }
            entry.Images = images;
            var r = entry.Record;
            Finish(entry, r with { State = JobState.Succeeded, Step = r.Spec.Steps, ImageCount = images.Count });
            return Task.FromResult(true);
        }
    }

    public Task FailAsync(LeasedJob job, string error, CancellationToken ct = default)
    {
        lock (_gate)
        {
            if (Find(job.Id) is not { } entry || entry.Record.IsTerminal)
            {
                return Task.CompletedTask;
            }
            var r = entry.Record;
            if (r.Deliveries < _options.MaxDeliveries)
            {
                Requeue(entry);
                return Task.CompletedTask;
            }
            Finish(entry, r with { State = JobState.Failed, Error = error });
            return Task.CompletedTask;
        }
    }

    public Task ReleaseAsync(LeasedJob job, CancellationToken ct = default)
    {
        lock (_gate)
        {
            if (Find(job.Id) is { } entry && !entry.Record.IsTerminal)
            {
                Requeue(entry);
            }
            return Task.CompletedTask;
        }
    }

    public Task AcknowledgeAsync(LeasedJob job, CancellationToken ct = default) => Task.CompletedTask;

    private void Requeue(InProcessJob entry)
    {
        _jobs.MoveToBack(entry);
        entry.Update(entry.Record with { State = JobState.Queued, Step = 0 });
        _queues.Add(entry.Record.Spec.Model, entry.Record.Id);
    }

    /// <summary>Ends the job: finished now, kept for <c>Jobs:ResultTtl</c>, out of the depth gauge.</summary>
    private void Finish(InProcessJob entry, JobRecord record)
    {
        var now = time.GetUtcNow();
        entry.Update(record with { FinishedAt = now }, now + _options.ResultTtl);
        RefreshDepth(record.Spec.Model);
        if (record.Spec.Webhook is not null)
        {
            _webhooks.Writer.TryWrite(record.Id);
        }
    }

    /// <summary>In process, webhooks due live as long as the process, like its jobs.</summary>
    public async Task<IReadOnlyList<WebhookDue>> TakeWebhooksAsync(string consumer, int max, TimeSpan reclaimAfter, TimeSpan wait, CancellationToken ct = default)
    {
        var due = new List<WebhookDue>();
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(wait);
        try
        {
            while (due.Count == 0 && await _webhooks.Reader.WaitToReadAsync(timeout.Token).ConfigureAwait(false))
            {
                while (due.Count < max && _webhooks.Reader.TryRead(out var id))
                {
                    due.Add(new WebhookDue(id, id));
                }
            }
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
        }
        return due;
    }

    public Task AcknowledgeWebhookAsync(WebhookDue due, CancellationToken ct = default) => Task.CompletedTask;

    private InProcessJob? Find(string id) => _jobs.Find(id, time.GetUtcNow());

    private void RefreshDepth(string model) => metrics.SetDepth(model, _jobs.CountActive(model));
}
