using System.Runtime.ExceptionServices;

namespace RinServe.Diffusion;

/// <summary>
/// Draws the step noise z of a step's stochastic rows on a pool thread while the network runs: z depends on a row's seed
/// and step alone, and at high resolution drawing it costs as much as a small network call. Whoever gets to the fill
/// first does it, the pool thread or the stepper at <see cref="Wait"/>, so a busy machine whose pool thread starts late
/// costs nothing. One instance per <see cref="RowStepper"/>, reused every step: no per-step allocation.
/// </summary>
internal sealed class NoiseAhead(INoiseSource noise) : IThreadPoolWorkItem, IDisposable
{
    private const int Idle = 0;
    private const int Queued = 1;
    private const int Claimed = 2;
    private const int Closed = 3;

    private readonly List<SampleRow> _rows = [];
    private readonly ManualResetEventSlim _done = new(initialState: true);
    private int _state = Idle;
    private Exception? _error;

    /// <summary>Offers the fill of z for the stochastic rows (each at its own step) to the pool; their z must not be read until <see cref="Wait"/>.</summary>
    public void Start(IReadOnlyList<SampleRow> rows)
    {
        _done.Wait();
        _rows.Clear();
        for (var b = 0; b < rows.Count; b++) // not foreach: an interface enumerator would allocate every step
        {
            if (rows[b].SamplerUnit.Stochastic)
            {
                _rows.Add(rows[b]);
            }
        }

        _error = null;
        if (_rows.Count == 0)
        {
            return;
        }

        _done.Reset();
        Volatile.Write(ref _state, Queued);
        ThreadPool.UnsafeQueueUserWorkItem(this, preferLocal: false);
    }

    /// <summary>Returns once z is filled: fills it here if the pool thread has not started; rethrows a fill's error.</summary>
    public void Wait()
    {
        WaitQuietly();
        if (_error is { } error)
        {
            ExceptionDispatchInfo.Capture(error).Throw();
        }
    }

    /// <summary>As <see cref="Wait"/>, keeping a fill's error to itself (another error is already on its way).</summary>
    public void WaitQuietly()
    {
        if (Interlocked.CompareExchange(ref _state, Claimed, Queued) == Queued)
        {
            Fill();
        }

        _done.Wait();
    }

    public void Execute()
    {
        // A late work item finds the fill claimed (or the stepper gone) and does nothing.
        if (Interlocked.CompareExchange(ref _state, Claimed, Queued) == Queued)
        {
            Fill();
        }
    }

    private void Fill()
    {
        try
        {
            foreach (var row in _rows) // List<T>'s struct enumerator: no allocation
            {
                noise.Fill(row.Image.Seed, row.StepsDone, row.Z);
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

    /// <summary>Stops late work items and waits for a fill in progress, so the rows' memory can go back to its pool.</summary>
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
        _rows.Clear();
    }
}
