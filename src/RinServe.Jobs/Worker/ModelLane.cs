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
    private readonly List<HeldJob> _stepped = [];
    private int _rotation;

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

    /// <summary>Measured sampler seconds per network row of this model's steps (moving average); 0 until its first step.</summary>
    public double SecondsPerRow { get; private set; }

    /// <summary>
    /// Seconds of sampler work left in this lane by its measured time per row: every running job's steps left and every
    /// waiting job's steps, times their network rows. Infinite until the first step is measured.
    /// </summary>
    public double WorkLeft
    {
        get
        {
            if (SecondsPerRow == 0)
            {
                return double.PositiveInfinity;
            }
            var rows = 0L;
            foreach (var job in Running)
            {
                rows += (long)(job.Spec.Steps - job.StepsDone) * job.Spec.NetworkRows;
            }
            foreach (var job in Waiting)
            {
                rows += (long)job.Spec.Steps * job.Spec.NetworkRows;
            }
            return rows * SecondsPerRow;
        }
    }

    /// <summary>The jobs of the last <see cref="Gather"/>: the ones that step.</summary>
    public IReadOnlyList<HeldJob> Stepped => _stepped;

    public void Observe(TimeSpan elapsed, int networkRows)
    {
        var perRow = elapsed.TotalSeconds / Math.Max(1, networkRows);
        SecondsPerRow = SecondsPerRow == 0 ? perRow : 0.8 * SecondsPerRow + 0.2 * perRow;
    }

    /// <summary>
    /// The rows of the next step: every running job's, or, under <paramref name="maxNetworkRows"/>, whole jobs taken in
    /// turn from where the last step stopped (at least one), so that each job still advances. The lists are reused.
    /// </summary>
    public IReadOnlyList<SampleRow> Gather(int maxNetworkRows = int.MaxValue)
    {
        _rows.Clear();
        _owners.Clear();
        _stepped.Clear();
        var rows = 0;
        for (var n = 0; n < Running.Count; n++)
        {
            var job = Running[(_rotation + n) % Running.Count];
            if (_stepped.Count > 0 && rows + job.Spec.NetworkRows > maxNetworkRows)
            {
                continue;
            }
            _stepped.Add(job);
            rows += job.Spec.NetworkRows;
            for (var k = 0; k < job.Rows.Length; k++)
            {
                _rows.Add(job.Rows[k]);
                _owners.Add((job, k));
            }
        }
        _rotation = Running.Count == 0 ? 0 : (_rotation + _stepped.Count) % Running.Count;
        return _rows;
    }

    /// <summary>Network rows of the last <see cref="Gather"/>.</summary>
    public int SteppedRows => _stepped.Sum(j => j.Spec.NetworkRows);

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
