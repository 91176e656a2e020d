using System.Diagnostics;
using RinServe.Diffusion;

namespace RinServe.Jobs;

/// <summary>
/// A job a worker holds: taken and waiting for room among its model's rows, or running as one <see cref="SampleRow"/> per
/// image. The worker's loop owns the rows; the heartbeat sets <see cref="PreviewEvery"/> and <see cref="IsCanceled"/>.
/// </summary>
/// <param name="abort">The worker's shutdown-timeout token: it too ends a test's hold on the job (<see cref="Released"/>).</param>
internal sealed class HeldJob(LeasedJob lease, CancellationToken abort = default) : IDisposable
{
    private readonly CancellationTokenSource _released = CancellationTokenSource.CreateLinkedTokenSource(abort);
    private volatile bool _canceled;
    private readonly GeneratedImage?[] _previews = new GeneratedImage?[lease.Job.Spec.Count];
    private int _previewEvery;

    public LeasedJob Lease { get; } = lease;

    public string Id => Lease.Id;

    public JobSpec Spec => Lease.Job.Spec;

    /// <summary>The job's images as rows; empty until it starts.</summary>
    public SampleRow[] Rows { get; private set; } = [];

    public bool Started => Rows.Length > 0;

    /// <summary>Steps done; every row of a job starts together and shares its settings.</summary>
    public int StepsDone => Rows.Length > 0 ? Rows[0].StepsDone : 0;

    public bool Done => Rows.Length > 0 && Rows[0].Done;

    /// <summary>Set when a heartbeat learns the job was canceled; the loop drops it at the next step boundary.</summary>
    public bool IsCanceled => _canceled;

    /// <summary>Fires when the job is canceled or the worker's shutdown timeout runs out: a step gate lets go of the job.</summary>
    public CancellationToken Released => _released.Token;

    /// <summary>The x̂0 preview interval its watchers asked for; 0: none.</summary>
    public int PreviewEvery
    {
        get => Volatile.Read(ref _previewEvery);
        set => Volatile.Write(ref _previewEvery, value);
    }

    /// <summary>Sampler time from the first step.</summary>
    public Stopwatch Running { get; } = new();

    public void Cancel()
    {
        _canceled = true;
        try
        {
            _released.Cancel();
        }
        catch (ObjectDisposedException)
        {
            // Already dropped by the loop.
        }
    }

    /// <summary>Gives the job its rows (one per image, from its seeds); disposes those made so far when one fails.</summary>
    public void Start(IRowEngine engine)
    {
        var rows = new List<SampleRow>(Spec.Count);
        try
        {
            foreach (var image in Spec.ImageRequests())
            {
                rows.Add(engine.CreateRow(image, Spec.Settings));
            }
        }
        catch
        {
            rows.ForEach(r => r.Dispose());
            throw;
        }
        Rows = [.. rows];
        Running.Start();
    }

    /// <summary>Whether the job wants x̂0 previews after <paramref name="step"/>: every k steps but the last.</summary>
    public bool WantsPreview(int step)
    {
        var every = PreviewEvery;
        return every > 0 && step % every == 0 && step < Spec.Steps;
    }

    public void TakePreview(int image, GeneratedImage preview) => _previews[image] = preview;

    /// <summary>This step's preview of every image, tiled into one image; null unless every image made one.</summary>
    public GeneratedImage? ClaimPreview()
    {
        if (_previews.Length == 0 || Array.Exists(_previews, p => p is null))
        {
            return null;
        }
        var tiled = PreviewTiles.Tile(_previews!);
        Array.Clear(_previews);
        return tiled;
    }

    public IReadOnlyList<GeneratedImage> Images() => [.. Rows.Select(r => r.ToImage())];

    public void Dispose()
    {
        foreach (var row in Rows)
        {
            row.Dispose();
        }
        Rows = [];
        _released.Dispose();
    }
}

/// <summary>The previews of a job's n images as one image: a grid of ceil(√n) columns, row by row, gaps left black.</summary>
public static class PreviewTiles
{
    public static GeneratedImage Tile(IReadOnlyList<GeneratedImage> images)
    {
        ArgumentNullException.ThrowIfNull(images);
        if (images.Count == 1)
        {
            return images[0];
        }
        var first = images[0];
        var (w, h, c) = (first.Width, first.Height, first.Channels);
        var columns = (int)Math.Ceiling(Math.Sqrt(images.Count));
        var rows = (images.Count + columns - 1) / columns;
        var pixels = new byte[columns * w * rows * h * c];
        var stride = columns * w * c;
        for (var k = 0; k < images.Count; k++)
        {
            var (top, left) = (k / columns * h, k % columns * w);
            for (var y = 0; y < h; y++)
            {
                images[k].Pixels.AsSpan(y * w * c, w * c).CopyTo(pixels.AsSpan((top + y) * stride + left * c));
            }
        }
        return new GeneratedImage(columns * w, rows * h, c, pixels);
    }
}
