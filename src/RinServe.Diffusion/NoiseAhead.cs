using System.Runtime.ExceptionServices;

namespace RinServe.Diffusion;

/// <summary>
/// Draws a DDPM step's z on a pool thread while the network runs: z depends on the seeds and the step
/// alone, and at high resolution drawing it costs as much as a small network call. Whoever gets to the
/// fill first does it, the pool thread or the sampler at <see cref="Wait"/>, so a busy machine whose pool
/// thread starts late costs nothing. One instance per sampling call, reused every step: no per-step allocation.
/// </summary>
internal sealed class NoiseAhead : IThreadPoolWorkItem, IDisposable
{
    private const int Idle = 0;
    private const int Queued = 1;
    private const int Claimed = 2;
    private const int Closed = 3;

    private readonly INoiseSource _noise;
    private readonly IReadOnlyList<ImageRequest> _images;
    private readonly float[] _destination;
    private readonly int _perImage;
    private readonly ManualResetEventSlim _done = new(initialState: true);
    private int _state = Idle;
    private int _step;
    private Exception? _error;

    public NoiseAhead(INoiseSource noise, IReadOnlyList<ImageRequest> images, float[] destination, int perImage)
    {
        _noise = noise;
        _images = images;
        _destination = destination;
        _perImage = perImage;
    }

    /// <summary>Offers the fill of z for <paramref name="step"/> to the pool; the buffer must not be read until <see cref="Wait"/>.</summary>
    public void Start(int step)
    {
        _done.Wait();
        _done.Reset();
        _step = step;
        _error = null;
        Volatile.Write(ref _state, Queued);
        ThreadPool.UnsafeQueueUserWorkItem(this, preferLocal: false);
    }

    /// <summary>Returns once z is filled: fills it here if the pool thread has not started; rethrows a fill's error.</summary>
    public void Wait()
    {
        if (Interlocked.CompareExchange(ref _state, Claimed, Queued) == Queued)
        {
            Fill();
        }

        _done.Wait();
        if (_error is { } error)
        {
            ExceptionDispatchInfo.Capture(error).Throw();
        }
    }

    public void Execute()
    {
        // A late work item finds the fill claimed (or the sampler gone) and does nothing.
        if (Interlocked.CompareExchange(ref _state, Claimed, Queued) == Queued)
        {
            Fill();
        }
    }

    private void Fill()
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
            Volatile.Write(ref _state, Idle);
            _done.Set();
        }
    }

    /// <summary>Stops late work items and waits for a fill in progress, so the buffer can go back to its pool.</summary>
    public void Dispose()
    {
        while (true)
        {
            var state = Volatile.Read(ref _state);
            if (state == Claimed)
            {
                _done.Wait();
                continue;
            }

            if (Interlocked.CompareExchange(ref _state, Closed, state) == state)
            {
                if (state == Queued)
                {
                    _done.Set(); // closed before anyone claimed it: nobody else will signal
                }

                break;
            }
        }

        // A fill may have marked itself idle and not yet signalled. The event itself is not disposed:
        // it never creates a kernel handle (nothing reads WaitHandle), and a late Set must not find it disposed.
        _done.Wait();
    }
}
