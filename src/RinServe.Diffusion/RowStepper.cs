using System.Buffers;

namespace RinServe.Diffusion;

/// <summary>
/// Runs one step of any set of rows in one network call: each row at its own step, with its own schedule, sampler and
/// guidance (the model must be the stepper's). The call's batch is every row's class half, then the null-class half of the
/// guided rows; γ, class and self-conditioning latents go per row. Writes straight into the network's own arrays when it
/// lends them (<see cref="IBufferedDenoiser"/>), else into buffers it reuses from call to call (growing them when a
/// bigger set comes), so a loop allocates nothing per step. One stepper per loop: not thread-safe.
/// </summary>
public sealed class RowStepper : IDisposable
{
    private readonly IDenoiser _denoiser;
    private readonly ModelSpec _spec;
    private readonly NoiseAhead _noiseAhead;
    private readonly SliceWorkers _workers;
    private readonly InputPass _input = new();
    private readonly UpdatePass _update = new();
    private float[] _netIn = [];
    private float[] _netPred = [];
    private float[] _gammas = [];
    private long[] _classes = [];
    private float[] _latentsIn = [];
    private float[] _latentsOut = [];
    private int[] _uncondIndex = [];
    private StepTimes[] _times = [];

    internal RowStepper(IDenoiser denoiser, INoiseSource noise, int helpers = -1)
    {
        _workers = new SliceWorkers(helpers < 0 ? SliceWorkers.DefaultHelpers : helpers);
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
        var netIn = lender is not null ? lent.X : _netIn.AsMemory(0, netRows * perImage);
        var gammas = lender is not null ? lent.Gamma.Span : _gammas.AsSpan(0, netRows);
        var classes = lender is not null ? lent.ClassIds.Span : _classes.AsSpan(0, netRows);
        var latentsIn = lender is not null ? lent.LatentsIn.Span : _latentsIn.AsSpan(0, netRows * perLatents);
        var next = rows.Count; // the null-class half follows the class half
        for (var b = 0; b < rows.Count; b++)
        {
            var row = rows[b];
            _times[b] = row.Times; // the schedule once per row and step, for the input and the update
            var gamma = (float)_times[b].Gamma;
            gammas[b] = gamma;
            classes[b] = row.Image.ClassId;
            row.Latents(0).CopyTo(latentsIn.Slice(b * perLatents, perLatents));
            _uncondIndex[b] = -1;
            // x_t normalized into the class half, and copied to the null-class half when guided.
            _input.Set(row.XMemory, netIn.Slice(b * perImage, perImage), row.Guided ? netIn.Slice(next * perImage, perImage) : Memory<float>.Empty,
                _spec.NormalizeInput ? RinSampler.InputDivisor(row.Statistics, perImage) : 1f);
            _workers.Run(_input, Slices(perImage));
            if (row.Guided)
            {
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
                _input.Clear();
                lender.Run(netRows);
            }
            else
            {
                _input.Clear();
                _denoiser.Denoise(
                    netRows, netIn.Span, gammas, classes, latentsIn,
                    _netPred.AsSpan(0, netRows * perImage), _latentsOut.AsSpan(0, netRows * perLatents));
            }
        }
        catch
        {
            _noiseAhead.WaitQuietly(); // the network's error is the one to report; z must not be written after this returns
            throw;
        }

        _noiseAhead.Wait();
        var pred = lender is not null ? lent.Pred : _netPred.AsMemory(0, netRows * perImage);
        var latentsOut = lender is not null ? lent.LatentsOut.Span : _latentsOut.AsSpan(0, netRows * perLatents);
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
            var x0 = row.KeepX0 || times.IsLast || preview ? row.X0Memory : Memory<float>.Empty;
            var slices = row.SamplerUnit.HistoryImages > 1 ? 1 : Slices(perImage); // several history images do not slice (one span each)
            _update.Set(
                row.SamplerUnit,
                times,
                Denoising.At(times.Gamma, row.Settings.Guidance, _spec),
                row.XMemory,
                pred.Slice(b * perImage, perImage),
                uncond >= 0 ? pred.Slice(uncond * perImage, perImage) : ReadOnlyMemory<float>.Empty,
                row.ZMemory,
                row.HistoryMemory,
                x0,
                slices);
            try
            {
                _workers.Run(_update, slices);
                row.Statistics = _update.Statistics(slices);
            }
            finally
            {
                _update.Clear();
            }

            row.StepsDone = step;
            if (preview)
            {
                previews!.Take(step, b, X0Preview.Downsample(row.X0, _spec));
            }
        }
    }

    /// <summary>
    /// Pixels per slice of the image-sized passes (a multiple of <see cref="RowKernel.StatisticsBlock"/>). An image larger
    /// than this (above 256×256 px) is cut into slices that may run on several threads; Σx and Σx² then add up slice by slice
    /// in order, the same on every machine and thread count.
    /// </summary>
    internal const int SlicePixels = 1 << 16;

    internal static int Slices(int pixels) => (pixels + SlicePixels - 1) / SlicePixels;

    /// <summary>Stops noise work still queued; the rows stay the caller's.</summary>
    public void Dispose()
    {
        _noiseAhead.Dispose();
        _workers.Dispose();
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

    /// <summary>One row's network input: x_t / divisor into the class half's slot (and the null-class half's), slice by slice.</summary>
    private sealed class InputPass : ISliceJob
    {
        private ReadOnlyMemory<float> _x;
        private Memory<float> _input;
        private Memory<float> _uncond;
        private float _divisor;

        public void Set(ReadOnlyMemory<float> x, Memory<float> input, Memory<float> uncond, float divisor) =>
            (_x, _input, _uncond, _divisor) = (x, input, uncond, divisor);

        public void Clear() => (_x, _input, _uncond) = (default, default, default);

        public void RunSlice(int index)
        {
            var start = index * SlicePixels;
            var length = Math.Min(SlicePixels, _x.Length - start);
            var input = _input.Span.Slice(start, length);
            RinSampler.NetworkInput(_x.Span.Slice(start, length), input, _divisor);
            if (!_uncond.IsEmpty)
            {
                input.CopyTo(_uncond.Span.Slice(start, length));
            }
        }
    }

    /// <summary>One row's sampler step, slice by slice; each slice's Σx and Σx² kept apart and added in order after.</summary>
    private sealed class UpdatePass : ISliceJob
    {
        private Sampler? _sampler;
        private StepTimes _times;
        private Denoising _denoising;
        private Memory<float> _x;
        private ReadOnlyMemory<float> _predCond;
        private ReadOnlyMemory<float> _predUncond;
        private ReadOnlyMemory<float> _z;
        private Memory<float> _history;
        private Memory<float> _x0;
        private (double Sum, double SumOfSquares)[] _sums = [];

        public void Set(
            Sampler sampler, in StepTimes times, in Denoising denoising, Memory<float> x, ReadOnlyMemory<float> predCond,
            ReadOnlyMemory<float> predUncond, ReadOnlyMemory<float> z, Memory<float> history, Memory<float> x0, int slices)
        {
            (_sampler, _times, _denoising) = (sampler, times, denoising);
            (_x, _predCond, _predUncond, _z, _history, _x0) = (x, predCond, predUncond, z, history, x0);
            if (_sums.Length < slices)
            {
                _sums = new (double, double)[slices];
            }
        }

        public void Clear() => (_sampler, _x, _predCond, _predUncond, _z, _history, _x0) = (null, default, default, default, default, default, default);

        public (double Sum, double SumOfSquares) Statistics(int slices)
        {
            double sum = 0, squares = 0;
            for (var s = 0; s < slices; s++)
            {
                sum += _sums[s].Sum;
                squares += _sums[s].SumOfSquares;
            }

            return (sum, squares);
        }

        public void RunSlice(int index)
        {
            var whole = _sampler!.HistoryImages > 1; // then the row is one slice
            var start = whole ? 0 : index * SlicePixels;
            var length = whole ? _x.Length : Math.Min(SlicePixels, _x.Length - start);
            _sums[index] = _sampler.Step(
                _times,
                _denoising,
                new RowStep(
                    _x.Span.Slice(start, length),
                    _predCond.Span.Slice(start, length),
                    Part(_predUncond, start, length),
                    Part(_z, start, length),
                    whole ? _history.Span : Part(_history, start, length),
                    Part(_x0, start, length)));
        }

        private static Span<float> Part(Memory<float> memory, int start, int length) =>
            memory.IsEmpty ? Span<float>.Empty : memory.Span.Slice(start, length);

        private static ReadOnlySpan<float> Part(ReadOnlyMemory<float> memory, int start, int length) =>
            memory.IsEmpty ? ReadOnlySpan<float>.Empty : memory.Span.Slice(start, length);
    }
}
