using System.Runtime.ExceptionServices;

namespace RinServe.Diffusion;

/// <summary>
/// Draws a DDPM step's z on a pool thread while the network runs: z depends on the seeds and the step
/// alone, and at high resolution drawing it costs as much as a small network call. One instance per
/// sampling call, reused every step, so the loop still allocates nothing per step.
/// </summary>
internal sealed class NoiseAhead : IThreadPoolWorkItem, IDisposable
{
    private readonly INoiseSource _noise;
    private readonly IReadOnlyList<ImageRequest> _images;
    private readonly float[] _destination;
    private readonly int _perImage;
    private readonly ManualResetEventSlim _done = new(initialState: true);
    private int _step;
    private Exception? _error;

    public NoiseAhead(INoiseSource noise, IReadOnlyList<ImageRequest> images, float[] destination, int perImage)
    {
        _noise = noise;
        _images = images;
        _destination = destination;
        _perImage = perImage;
    }

    /// <summary>Starts filling z for <paramref name="step"/>; the buffer must not be read until <see cref="Wait"/>.</summary>
    public void Start(int step)
    {
        _done.Wait();
        _done.Reset();
        _step = step;
        _error = null;
        ThreadPool.UnsafeQueueUserWorkItem(this, preferLocal: false);
    }

    /// <summary>Blocks until the last started fill is done; rethrows what it threw.</summary>
    public void Wait()
    {
        _done.Wait();
        if (_error is { } error)
        {
            ExceptionDispatchInfo.Capture(error).Throw();
        }
    }

    public void Execute()
    {
        try
        {
            for (var b = 0; b < _images.Count; b++)
            {
                _noise.Fill(_images[b].Seed, _step, _destination.AsSpan(b * _perImage, _perImage));
            }
        }
        catch (Exception e)
        {
            _error = e;
        }
        finally
        {
            _done.Set();
        }
    }

    /// <summary>Waits for a fill still running (the buffer goes back to its pool after this), then frees the event.</summary>
    public void Dispose()
    {
        _done.Wait();
        _done.Dispose();
    }
}
