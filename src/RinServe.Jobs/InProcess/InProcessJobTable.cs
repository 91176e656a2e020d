using RinServe.Diffusion;

namespace RinServe.Jobs;

/// <summary>
/// The jobs of the <see cref="InProcessJobQueue"/> in the order they were queued, with their expiry and queue
/// positions; not thread-safe: the queue's lock guards it.
/// </summary>
internal sealed class InProcessJobTable
{
    private readonly Dictionary<string, InProcessJob> _jobs = new(StringComparer.Ordinal);
    private long _sequence;

    /// <summary>Adds a queued job, last in its model's order.</summary>
    public InProcessJob Add(JobRecord record, DateTimeOffset expires)
    {
        var entry = new InProcessJob(record, ++_sequence, expires);
        _jobs[record.Id] = entry;
        return entry;
    }

    /// <summary>Puts a job last in its model's order again, not taken.</summary>
    public void MoveToBack(InProcessJob entry)
    {
        entry.Sequence = ++_sequence;
        entry.Taken = false;
    }

    /// <summary>The job, expired or not (until <see cref="Sweep"/> removes it).</summary>
    public bool TryGet(string id, out InProcessJob entry) => _jobs.TryGetValue(id, out entry!);

    /// <summary>The job, unless unknown or expired at <paramref name="now"/>.</summary>
    public InProcessJob? Find(string id, DateTimeOffset now) =>
        _jobs.TryGetValue(id, out var entry) && entry.Expires > now ? entry : null;

    /// <summary>The job's record with its queue position: 1 + the queued jobs of its model ahead of it not taken yet.</summary>
    public JobRecord WithPosition(InProcessJob entry)
    {
        if (entry.Record.State != JobState.Queued)
        {
            return entry.Record with { QueuePosition = null };
        }
        var model = entry.Record.Spec.Model;
        var ahead = _jobs.Values.Count(e => e.Record.State == JobState.Queued && !e.Taken && e.Sequence < entry.Sequence && e.Record.Spec.Model == model);
        return entry.Record with { QueuePosition = ahead + 1 };
    }

    /// <summary>Jobs of a model queued or running.</summary>
    public int CountActive(string model) =>
        _jobs.Values.Count(e => !e.Record.IsTerminal && e.Record.Spec.Model == model);

    /// <summary>Unfinished jobs of one owner (API key hash), of every model.</summary>
    public int CountActiveOf(string owner) =>
        _jobs.Values.Count(e => !e.Record.IsTerminal && e.Record.Spec.Owner == owner);

    /// <summary>Jobs queued or running, of every model.</summary>
    public int Unfinished() => _jobs.Values.Count(e => !e.Record.IsTerminal);

    public void Sweep(DateTimeOffset now)
    {
        foreach (var (id, entry) in _jobs)
        {
            if (entry.Expires <= now)
            {
                _jobs.Remove(id);
            }
        }
    }
}

/// <summary>One job of the <see cref="InProcessJobQueue"/>, guarded by the queue's lock.</summary>
internal sealed class InProcessJob(JobRecord record, long sequence, DateTimeOffset expires)
{
    public JobRecord Record { get; private set; } = record;

    /// <summary>Its place in the order of the queue: taken anew each time the job is queued again.</summary>
    public long Sequence { get; set; } = sequence;

    public DateTimeOffset Expires { get; private set; } = expires;

    /// <summary>Handed to a worker but not started yet: no longer ahead of anyone in the queue.</summary>
    public bool Taken { get; set; }

    public IReadOnlyList<GeneratedImage> Images { get; set; } = [];

    /// <summary>Every how many steps a watcher wants an x̂0 preview; 0: nobody asked.</summary>
    public int PreviewEvery { get; set; }

    public JobPreview? Preview { get; set; }

    /// <summary>Completes at the next change of <see cref="Record"/>.</summary>
    public Task Changed => _changed.Task;

    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Sets the record, and the expiry when <paramref name="expires"/> is given; wakes the watchers.</summary>
    public void Update(JobRecord record, DateTimeOffset? expires = null)
    {
        Record = record;
        if (expires is { } e)
        {
            Expires = e;
        }
        var changed = _changed;
        _changed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        changed.TrySetResult();
    }
}
