namespace RinServe.Jobs;

/// <summary>
/// Which model a worker steps next, so that no model's requests wait for another model's whole trajectories: each model is
/// charged the measured sampler time of its steps, and the busy model charged least goes next (start-time fair queueing,
/// as the Linux CFS does for threads). A 64 px step costs a few milliseconds and a 1024 px step tens, so with both busy the
/// 64 px model makes many steps for each 1024 px one and each gets half the sampler's time. A model that becomes busy
/// starts at the least charge among the busy ones: time spent idle earns no credit to burst with later, and time it had
/// the sampler to itself (nobody else busy) is no debt either.
/// Short work goes first (<see cref="FairShare(TimeSpan)"/>): of the busy models, the one with the least work left runs
/// its steps before the others', so a 64 px request finishes in one go instead of in every other slice beside a 1024 px
/// stream (shortest remaining work first, which minimizes mean latency); it is still charged, and may run at most the
/// bound ahead of the least-charged busy model, so a stream of short jobs cannot shut a dear model out.
/// </summary>
public sealed class FairShare
{
    private readonly Dictionary<string, double> _charged = new(StringComparer.Ordinal);
    private readonly Dictionary<string, double> _workLeft = new(StringComparer.Ordinal);
    private readonly List<string> _busy = [];
    private readonly double _shortWork;

    /// <summary>Plain start-time fair queueing: equal sampler time for every busy model.</summary>
    public FairShare()
        : this(TimeSpan.Zero)
    {
    }

    /// <summary>
    /// <paramref name="shortWork"/>: the busy model with the least work left (<see cref="SetWorkLeft"/>) goes first while it
    /// is less than this far ahead of the least-charged busy model (<c>Workers:ShortWorkFirst</c>); zero turns it off.
    /// </summary>
    public FairShare(TimeSpan shortWork)
    {
        _shortWork = shortWork.TotalSeconds;
    }

    /// <summary>Seconds of sampler time charged to <paramref name="model"/>, relative to the others.</summary>
    public double Charged(string model) => _charged.GetValueOrDefault(model);

    /// <summary>Marks a model busy (it has rows to step) or idle.</summary>
    public void SetBusy(string model, bool busy)
    {
        var index = _busy.IndexOf(model);
        if (busy && index < 0)
        {
            if (_busy.Count > 0)
            {
                _charged[model] = _busy.Min(Charged);
            }
            _busy.Add(model);
        }
        else if (!busy && index >= 0)
        {
            _busy.RemoveAt(index);
        }
    }

    /// <summary>Seconds of sampler work <paramref name="model"/> has left (infinite while unknown: no step measured yet).</summary>
    public void SetWorkLeft(string model, double seconds) => _workLeft[model] = seconds;

    /// <summary>
    /// The busy model with the least work left among those less than the short-work bound ahead; otherwise, or while any
    /// busy model's work left is unknown (its first step is not measured yet, and it gets that step from the fair share),
    /// the busy model charged least (the one busy longest on a tie); null when none is busy.
    /// </summary>
    public string? Next()
    {
        string? least = null;
        foreach (var model in _busy)
        {
            if (least is null || Charged(model) < Charged(least))
            {
                least = model;
            }
        }
        if (least is null || _shortWork <= 0 || _busy.Count < 2
            || _busy.Exists(m => double.IsPositiveInfinity(_workLeft.GetValueOrDefault(m, double.PositiveInfinity))))
        {
            return least;
        }

        string? shortest = null;
        foreach (var model in _busy)
        {
            var left = _workLeft.GetValueOrDefault(model, double.PositiveInfinity);
            if (Charged(model) - Charged(least) < _shortWork
                && (shortest is null || left < _workLeft[shortest]))
            {
                shortest = model;
            }
        }
        return shortest ?? least;
    }

    /// <summary>Whether <paramref name="model"/> has the least work left of the busy models (ties included): the short one.</summary>
    public bool LeastWorkLeft(string model)
    {
        var left = _workLeft.GetValueOrDefault(model, double.PositiveInfinity);
        return _busy.TrueForAll(m => left <= _workLeft.GetValueOrDefault(m, double.PositiveInfinity));
    }

    /// <summary>Charges a model the measured time of one of its steps.</summary>
    public void Charge(string model, TimeSpan cost) => _charged[model] = Charged(model) + cost.TotalSeconds;
}
