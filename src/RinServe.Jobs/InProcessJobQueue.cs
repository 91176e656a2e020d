using System.Runtime.CompilerServices;
using System.Threading.Channels;
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
    private readonly Dictionary<string, Entry> _jobs = new(StringComparer.Ordinal);
    private readonly Dictionary<string, (string Id, string Fingerprint, DateTimeOffset Expires)> _idempotency = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Channel<string>> _queues = new(StringComparer.Ordinal);
    private long _sequence;
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
            return _jobs.Values.Count(e => !e.Record.IsTerminal);
        }
    }

    private sealed class Entry(JobRecord record, long sequence, DateTimeOffset expires)
    {
        public JobRecord Record = record;
        public long Sequence = sequence;
        public DateTimeOffset Expires = expires;
        /// <summary>Handed to a worker but not started yet: no longer ahead of anyone in the queue.</summary>
        public bool Taken;
        public IReadOnlyList<GeneratedImage> Images = [];
        /// <summary>Every how many steps a watcher wants an x̂0 preview; 0: nobody asked.</summary>
        public int PreviewEvery;
        public JobPreview? Preview;
        public TaskCompletionSource Changed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    public Task<EnqueueResult> EnqueueAsync(JobSpec spec, IdempotencyClaim? idempotency, CancellationToken ct = default)
    {
        var now = time.GetUtcNow();
        Channel<string> queue;
        JobRecord record;
        lock (_gate)
        {
            SweepExpired(now);
            var idemKey = idempotency is null ? null : $"{spec.Owner}\n{idempotency.Key}";
            if (idemKey is not null && _idempotency.TryGetValue(idemKey, out var seen) && _jobs.TryGetValue(seen.Id, out var earlier))
            {
                return Task.FromResult(seen.Fingerprint == idempotency!.Fingerprint
                    ? new EnqueueResult(EnqueueStatus.Existing, WithPosition(earlier))
                    : new EnqueueResult(EnqueueStatus.IdempotencyConflict, WithPosition(earlier)));
            }
            if (!_accepting)
            {
                return Task.FromResult(new EnqueueResult(EnqueueStatus.ShuttingDown, null, _options.QueueFullRetryAfter));
            }
            var depth = CountActive(spec.Model);
            if (depth >= _options.MaxQueueLength)
            {
                return Task.FromResult(new EnqueueResult(EnqueueStatus.QueueFull, null, _options.QueueFullRetryAfter));
            }
            record = new JobRecord(JobId.New(), spec, JobState.Queued, now, null, null, 0, null, null, 0, 0);
            var entry = new Entry(record, ++_sequence, now + _options.JobTtl);
            _jobs[record.Id] = entry;
            if (idemKey is not null)
            {
                _idempotency[idemKey] = (record.Id, idempotency!.Fingerprint, now + _options.ResultTtl);
            }
            queue = QueueOf(spec.Model);
            metrics.SetDepth(spec.Model, depth + 1);
            record = WithPosition(entry);
        }
        queue.Writer.TryWrite(record.Id);
        return Task.FromResult(new EnqueueResult(EnqueueStatus.Created, record));
    }

    public Task<JobRecord?> GetAsync(string id, CancellationToken ct = default)
    {
        lock (_gate)
        {
            return Task.FromResult(Find(id) is { } entry ? WithPosition(entry) : null);
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
                Update(entry, entry.Record with { State = JobState.Canceled, FinishedAt = time.GetUtcNow() }, _options.ResultTtl);
                metrics.SetDepth(entry.Record.Spec.Model, CountActive(entry.Record.Spec.Model));
            }
            return Task.FromResult<JobRecord?>(WithPosition(entry));
        }
    }

    public async IAsyncEnumerable<JobRecord> WatchAsync(string id, [EnumeratorCancellation] CancellationToken ct = default)
    {
        JobRecord? last = null;
        while (true)
        {
            JobRecord? current;
            Task changed;
            lock (_gate)
            {
                var entry = Find(id);
                current = entry is null ? null : WithPosition(entry);
                changed = entry?.Changed.Task ?? Task.CompletedTask;
            }
            if (current is null)
            {
                yield break;
            }
            if (current != last)
            {
                yield return current;
                last = current;
            }
            if (current.IsTerminal)
            {
                yield break;
            }
            // Queue positions move without an event of this job, so look again at least once a second.
            try
            {
                await changed.WaitAsync(TimeSpan.FromSeconds(1), time, ct).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
            }
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
            long depth = CountActive(model);
            metrics.SetDepth(model, depth);
            return Task.FromResult(depth);
        }
    }

    public Task PingAsync(CancellationToken ct = default) => Task.CompletedTask;

    public async Task<IReadOnlyList<LeasedJob>> TakeAsync(
        string model, string consumer, int max, TimeSpan firstWait, TimeSpan batchDelay, CancellationToken ct = default)
    {
        Channel<string> queue;
        lock (_gate)
        {
            queue = QueueOf(model);
        }
        var taken = new List<LeasedJob>();
        var wait = firstWait;
        while (taken.Count < max)
        {
            if (!queue.Reader.TryRead(out var id))
            {
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
                timeout.CancelAfter(wait);
                try
                {
                    await queue.Reader.WaitToReadAsync(timeout.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (!ct.IsCancellationRequested || taken.Count > 0)
                {
                    // Batch delay over, or shutting down with jobs held: return them (the worker hands them back).
                    break;
                }
                continue;
            }
            lock (_gate)
            {
                // Canceled or expired while queued: skip it.
                if (Find(id) is { Record.State: JobState.Queued } entry)
                {
                    entry.Taken = true;
                    taken.Add(new LeasedJob(entry.Record, entry.Sequence.ToString(System.Globalization.CultureInfo.InvariantCulture)));
                }
            }
            if (taken.Count == 1)
            {
                wait = batchDelay;
            }
        }
        return taken;
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
            Update(entry, r with { State = JobState.Running, StartedAt = r.StartedAt ?? time.GetUtcNow(), Step = 0, Deliveries = r.Deliveries + 1 }, null);
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
                Update(entry, entry.Record with { Step = step, PreviewStep = preview is null ? entry.Record.PreviewStep : step }, null);
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
            Update(entry, r with { State = JobState.Succeeded, FinishedAt = time.GetUtcNow(), Step = r.Spec.Steps, ImageCount = images.Count }, _options.ResultTtl);
            metrics.SetDepth(r.Spec.Model, CountActive(r.Spec.Model));
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
            Update(entry, r with { State = JobState.Failed, FinishedAt = time.GetUtcNow(), Error = error }, _options.ResultTtl);
            metrics.SetDepth(r.Spec.Model, CountActive(r.Spec.Model));
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

    private void Requeue(Entry entry)
    {
        entry.Sequence = ++_sequence;
        entry.Taken = false;
        Update(entry, entry.Record with { State = JobState.Queued, Step = 0 }, null);
        QueueOf(entry.Record.Spec.Model).Writer.TryWrite(entry.Record.Id);
    }

    private void Update(Entry entry, JobRecord record, TimeSpan? ttl)
    {
        entry.Record = record;
        if (ttl is { } t)
        {
            entry.Expires = time.GetUtcNow() + t;
        }
        var changed = entry.Changed;
        entry.Changed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        changed.TrySetResult();
    }

    private Entry? Find(string id) =>
        _jobs.TryGetValue(id, out var entry) && entry.Expires > time.GetUtcNow() ? entry : null;

    private JobRecord WithPosition(Entry entry)
    {
        if (entry.Record.State != JobState.Queued)
        {
            return entry.Record with { QueuePosition = null };
        }
        var model = entry.Record.Spec.Model;
        var ahead = _jobs.Values.Count(e => e.Record.State == JobState.Queued && !e.Taken && e.Sequence < entry.Sequence && e.Record.Spec.Model == model);
        return entry.Record with { QueuePosition = ahead + 1 };
    }

    private int CountActive(string model) =>
        _jobs.Values.Count(e => !e.Record.IsTerminal && e.Record.Spec.Model == model);

    private Channel<string> QueueOf(string model)
    {
        if (!_queues.TryGetValue(model, out var queue))
        {
            queue = Channel.CreateUnbounded<string>(new UnboundedChannelOptions { SingleReader = false, SingleWriter = false });
            _queues[model] = queue;
        }
        return queue;
    }

    private void SweepExpired(DateTimeOffset now)
    {
        foreach (var (id, entry) in _jobs)
        {
            if (entry.Expires <= now)
            {
                _jobs.Remove(id);
            }
        }
        foreach (var (key, seen) in _idempotency)
        {
            if (seen.Expires <= now)
            {
                _idempotency.Remove(key);
            }
        }
    }
}
