using RinServe.Diffusion;

namespace RinServe.Jobs;

/// <summary>
/// The x̂0 previews the watchers of a batch's jobs asked for (GET /jobs/{id}/events?preview=k): the first image
/// of each such job, every k steps. The heartbeat sets the intervals; the sampler thread asks and takes.
/// Until someone asks, <see cref="Wants"/> is one array read, and the sampler writes no x̂0 for it.
/// </summary>
internal sealed class BatchPreviews : IPreviewSink
{
    private readonly IReadOnlyList<LeasedJob> _jobs;
    /// <summary>Per image of the batch: the index of the job whose first image it is, or -1.</summary>
    private readonly int[] _jobOfImage;
    private readonly int[] _every;
    private readonly GeneratedImage?[] _taken;
    private readonly int _steps;

    public BatchPreviews(IReadOnlyList<LeasedJob> jobs)
    {
        _jobs = jobs;
        _jobOfImage = new int[jobs.Sum(j => j.Job.Spec.Count)];
        Array.Fill(_jobOfImage, -1);
        for (int j = 0, first = 0; j < jobs.Count; first += jobs[j].Job.Spec.Count, j++)
        {
            _jobOfImage[first] = j;
        }
        _every = new int[jobs.Count];
        _taken = new GeneratedImage?[jobs.Count];
        _steps = jobs.Count > 0 ? jobs[0].Job.Spec.Steps : 0;
    }

    /// <summary>Takes the intervals a heartbeat returned.</summary>
    public void Update(IReadOnlyDictionary<string, int> previewEvery)
    {
        for (var j = 0; j < _jobs.Count; j++)
        {
            Volatile.Write(ref _every[j], previewEvery.GetValueOrDefault(_jobs[j].Id));
        }
    }

    /// <summary>Every k steps but the last: the image itself follows it at once.</summary>
    public bool Wants(int step, int image)
    {
        var job = image < _jobOfImage.Length ? _jobOfImage[image] : -1;
        if (job < 0)
        {
            return false;
        }
        var every = Volatile.Read(ref _every[job]);
        return every > 0 && step % every == 0 && step < _steps;
    }

    public void Take(int step, int image, GeneratedImage preview) => _taken[_jobOfImage[image]] = preview;

    /// <summary>The preview taken for job <paramref name="job"/> (its index in the batch) at this step, once; else null.</summary>
    public GeneratedImage? Claim(int job)
    {
        var preview = _taken[job];
        _taken[job] = null;
        return preview;
    }
}
