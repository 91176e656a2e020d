using RinServe.Diffusion;

namespace RinServe.Jobs;

/// <summary>
/// One model in a worker: its row engine, the jobs running in it (their rows step together, each at its own step) and
/// the jobs taken that wait for room. It is also the preview sink of its steps: row index to job and image.
/// </summary>
internal sealed class ModelLane(string model, IRowEngine engine) : IPreviewSink, IDisposable
{
    private readonly List<SampleRow> _rows = [];
    private readonly List<(HeldJob Job, int Image)> _owners = [];

    public string Model { get; } = model;

    public IRowEngine Engine { get; } = engine;

    public List<HeldJob> Running { get; } = [];

    /// <summary>Taken, in the order taken, not started: they join as rows free up, first come first.</summary>
    public List<HeldJob> Waiting { get; } = [];

    public bool Busy => Running.Count > 0;

    public bool Holds => Running.Count > 0 || Waiting.Count > 0;

    /// <summary>Network rows of one step (images, twice when guided).</summary>
    public int RunningRows => Running.Sum(j => j.Spec.NetworkRows);

    /// <summary>
    /// Whether <paramref name="job"/> may join now: under both caps, or alone (a job larger than the row cap runs by
    /// itself rather than never).
    /// </summary>
    public bool Fits(HeldJob job, int maxJobs, int maxRows) =>
        Running.Count == 0 || (Running.Count < maxJobs && RunningRows + job.Spec.NetworkRows <= maxRows);

    /// <summary>How many more jobs to take from the queue: none while any wait, else what the caps leave (each job has a row at least).</summary>
    public int Room(int maxJobs, int maxRows) =>
        Waiting.Count > 0 ? 0 : Math.Max(0, Math.Min(maxJobs - Running.Count, maxRows - RunningRows));

    /// <summary>The rows of every running job, in job order; the list is reused from step to step.</summary>
    public IReadOnlyList<SampleRow> Gather()
    {
        _rows.Clear();
        _owners.Clear();
        foreach (var job in Running)
        {
            for (var k = 0; k < job.Rows.Length; k++)
            {
                _rows.Add(job.Rows[k]);
                _owners.Add((job, k));
            }
        }
        return _rows;
    }

    public bool Wants(int step, int image) => _owners[image].Job.WantsPreview(step);

    public void Take(int step, int image, GeneratedImage preview)
    {
        var (job, k) = _owners[image];
        job.TakePreview(k, preview);
    }

    public void Dispose()
    {
        foreach (var job in Running.Concat(Waiting))
        {
            job.Dispose();
        }
        Running.Clear();
        Waiting.Clear();
        Engine.Dispose();
    }
}
