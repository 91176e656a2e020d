namespace RinServe.Jobs;

/// <summary>
/// Which model a worker steps next, so that no model's requests wait for another model's whole trajectories: each model is
/// charged the measured sampler time of its steps, and the busy model charged least goes next (start-time fair queueing,
/// as the Linux CFS does for threads). A 64 px step costs a few milliseconds and a 1024 px step tens, so with both busy the
/// 64 px model makes many steps for each 1024 px one and each gets half the sampler's time. A model that becomes busy
/// starts at the least charge among the busy ones: time spent idle earns no credit to burst with later.
/// </summary>
public sealed class FairShare
{
    private readonly Dictionary<string, double> _charged = new(StringComparer.Ordinal);
    private readonly List<string> _busy = [];

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
                _charged[model] = Math.Max(Charged(model), _busy.Min(Charged));
            }
            _busy.Add(model);
        }
        else if (!busy && index >= 0)
        {
            _busy.RemoveAt(index);
        }
    }

    /// <summary>The busy model charged least (the one busy longest on a tie), or null when none is busy.</summary>
    public string? Next()
    {
        string? next = null;
        foreach (var model in _busy)
        {
            if (next is null || Charged(model) < Charged(next))
            {
                next = model;
            }
        }
        return next;
    }

    /// <summary>Charges a model the measured time of one of its steps.</summary>
    public void Charge(string model, TimeSpan cost) => _charged[model] = Charged(model) + cost.TotalSeconds;
}
