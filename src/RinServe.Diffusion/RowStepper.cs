using System.Buffers;

namespace RinServe.Diffusion;

/// <summary>
/// Runs one step of any set of rows in one network call: each row at its own step, with its own schedule, sampler and
/// guidance (the model must be the stepper's). The call's batch is every row's class half, then the null-class half of the
/// guided rows whose guidance interval is not yet behind them (<see cref="SampleRow.NetworkRows"/>); γ, class and
/// self-conditioning latents go per row. Writes straight into the network's own arrays when it lends them (<see cref="IBufferedDenoiser"/>), else into buffers it reuses from call to call (growing them when a
/// bigger set comes), so a loop allocates nothing per step. One stepper per loop: not thread-safe.
/// </summary>
public sealed class RowStepper : IDisposable
{
    private readonly IDenoiser _denoiser;
    private readonly ModelSpec _spec;
    private readonly NoiseAhead _noiseAhead;
    private float[] _netIn = [];
    private float[] _netPred = [];
    private float[] _gammas = [];
    private long[] _classes = [];
    private float[] _latentsIn = [];
    private float[] _latentsOut = [];
    private int[] _uncondIndex = [];
    private StepTimes[] _times = [];

    internal RowStepper(IDenoiser denoiser, INoiseSource noise)
    {
        _denoiser = denoiser;
        _spec = denoiser.Spec;
        _noiseAhead = new NoiseAhead(noise);
    }

    /// <summary>
    /// One step of every row (none may be done): normalize each x_t, one network call, then each row's sampler updates it.
    /// <paramref name="previews"/> is asked per row by its index in <paramref name="rows"/> and its step number (1..Steps).
    /// </summary>
    public void Step(IReadOnlyList<SampleRow> rows, IPreviewSink? previews = null)
    {
        ArgumentNullException.ThrowIfNull(rows);
        if (rows.Count == 0)
        {
            throw new ArgumentException("at least one row is needed", nameof(rows));
        }

        var netRows = 0;
        for (var b = 0; b < rows.Count; b++) // not foreach: an interface enumerator would allocate every step
        {
            var row = rows[b];
            if (row.Done)
            {
                throw new ArgumentException($"a row has already done all its {row.Settings.Steps} steps", nameof(rows));
            }

            netRows += row.NetworkRows;
        }

        Reserve(netRows, rows.Count);
        var perImage = _spec.PixelsPerImage;
        var perLatents = _spec.LatentsPerImage;
        // The network's own arrays when it lends them (no copy in or out), else this stepper's.
        var lender = _denoiser as IBufferedDenoiser;
        var lent = lender is not null ? lender.Lend(netRows) : default;
        var netIn = lender is not null ? lent.X : _netIn.AsSpan(0, netRows * perImage);
        var gammas = lender is not null ? lent.Gamma : _gammas.AsSpan(0, netRows);
        var classes = lender is not null ? lent.ClassIds : _classes.AsSpan(0, netRows);
        var latentsIn = lender is not null ? lent.LatentsIn : _latentsIn.AsSpan(0, netRows * perLatents);
        var next = rows.Count; // the null-class half follows the class half
        for (var b = 0; b < rows.Count; b++)
        {
            var row = rows[b];
            var input = netIn.Slice(b * perImage, perImage);
            RinSampler.NetworkInput(row.X, input, _spec.NormalizeInput, row.Statistics);
            _times[b] = row.Times; // the schedule once per row and step, for the input and the update
            var gamma = (float)_times[b].Gamma;
            gammas[b] = gamma;
            classes[b] = row.Image.ClassId;
            row.Latents(0).CopyTo(latentsIn.Slice(b * perLatents, perLatents));
            _uncondIndex[b] = -1;
            if (row.NeedsNullClass)
            {
                input.CopyTo(netIn.Slice(next * perImage, perImage));
                gammas[next] = gamma;
                classes[next] = _spec.NullClass!.Value;
                row.Latents(1).CopyTo(latentsIn.Slice(next * perLatents, perLatents));
                _uncondIndex[b] = next++;
            }
        }

        _noiseAhead.Start(rows);
        try
        {
            if (lender is not null)
            {
                lender.Run(netRows);
            }
            else
            {
                _denoiser.Denoise(
                    netRows, netIn, gammas, classes, latentsIn,
                    _netPred.AsSpan(0, netRows * perImage), _latentsOut.AsSpan(0, netRows * perLatents));
            }
        }
        catch
        {
            _noiseAhead.WaitQuietly(); // the network's error is the one to report; z must not be written after this returns
            throw;
        }

        _noiseAhead.Wait();
        ReadOnlySpan<float> pred = lender is not null ? lent.Pred : _netPred.AsSpan(0, netRows * perImage);
        ReadOnlySpan<float> latentsOut = lender is not null ? lent.LatentsOut : _latentsOut.AsSpan(0, netRows * perLatents);
        for (var b = 0; b < rows.Count; b++)
        {
            var row = rows[b];
            latentsOut.Slice(b * perLatents, perLatents).CopyTo(row.Latents(0));
            var uncond = _uncondIndex[b];
            if (uncond >= 0)
            {
                latentsOut.Slice(uncond * perLatents, perLatents).CopyTo(row.Latents(1));
            }

            var times = _times[b];
            var step = row.StepsDone + 1;
            var preview = previews is not null && previews.Wants(step, b);
            var x0 = row.KeepX0 || times.IsLast || preview ? row.X0 : Span<float>.Empty;
            row.Statistics = row.SamplerUnit.Step(
                times,
                Denoising.At(times, row.Settings, _spec),
                new RowStep(
                    row.X,
                    pred.Slice(b * perImage, perImage),
                    uncond >= 0 ? pred.Slice(uncond * perImage, perImage) : ReadOnlySpan<float>.Empty,
                    row.Z,
                    row.History,
                    x0));
            row.StepsDone = step;
            if (preview)
            {
                previews!.Take(step, b, X0Preview.Downsample(row.X0, _spec));
            }
        }
    }

    /// <summary>Stops noise work still queued; the rows stay the caller's.</summary>
    public void Dispose()
    {
        _noiseAhead.Dispose();
        var floats = ArrayPool<float>.Shared;
        foreach (var array in new[] { _netIn, _netPred, _gammas, _latentsIn, _latentsOut })
        {
            if (array.Length > 0)
            {
                floats.Return(array);
            }
        }

        if (_classes.Length > 0)
        {
            ArrayPool<long>.Shared.Return(_classes);
        }

        (_netIn, _netPred, _gammas, _latentsIn, _latentsOut, _classes) = ([], [], [], [], [], []);
    }

    private void Reserve(int netRows, int rows)
    {
        if (_uncondIndex.Length < rows)
        {
            _uncondIndex = new int[Math.Max(rows, 2 * _uncondIndex.Length)];
            _times = new StepTimes[_uncondIndex.Length];
        }

        if (_denoiser is IBufferedDenoiser)
        {
            return; // the network lends its own arrays
        }

        var perImage = _spec.PixelsPerImage;
        var perLatents = _spec.LatentsPerImage;
        Grow(ref _netIn, netRows * perImage);
        Grow(ref _netPred, netRows * perImage);
        Grow(ref _gammas, netRows);
        Grow(ref _latentsIn, netRows * perLatents);
        Grow(ref _latentsOut, netRows * perLatents);
        if (_classes.Length < netRows)
        {
            if (_classes.Length > 0)
            {
                ArrayPool<long>.Shared.Return(_classes);
            }

            _classes = ArrayPool<long>.Shared.Rent(netRows);
        }
    }

    private static void Grow(ref float[] array, int length)
    {
        if (array.Length >= length)
        {
            return;
        }

        if (array.Length > 0)
        {
            ArrayPool<float>.Shared.Return(array);
        }

        array = ArrayPool<float>.Shared.Rent(length);
    }
}
