using System.Globalization;

namespace RinServe.Diffusion;

/// <summary>
/// A noise schedule γ(t), t in [0, 1] with t = 1 pure noise (MODEL-CONTRACT.md, "Schedules").
/// Values are float64; the sampler casts per-step coefficients to float32 only after computing them.
/// </summary>
public abstract class Schedule
{
    /// <summary>Smallest γ any schedule returns: clip(·, 1e-9, 1) of the contract.</summary>
    public const double MinGamma = 1e-9;

    private protected Schedule(string text) => Text = text;

    /// <summary>The canonical schedule string, parseable by <see cref="Schedules.Parse"/>.</summary>
    public string Text { get; }

    /// <summary>γ(t): the signal variance of x_t = √γ·x0 + √(1−γ)·ε.</summary>
    public abstract double Gamma(double t);

    public override string ToString() => Text;
}

/// <summary>Parses the schedule strings of the contract; the one place that knows their grammar.</summary>
public static class Schedules
{
    public const string Allowed =
        "allowed schedules: 'cosine', 'linear', 'cosine@s,e,tau' (0 <= s < e <= 1, tau > 0), 'sigmoid@s,e,tau' (finite numbers, s < e, tau > 0)";

    private const int ProbePoints = 64;

    /// <summary>The default inference schedule of the contract.</summary>
    public static Schedule Cosine { get; } = new DefaultCosineSchedule();

    public static Schedule Linear { get; } = new LinearSchedule();

    public static bool TryParse(string text, out Schedule? schedule, out string? error)
    {
        schedule = null;
        error = null;
        var trimmed = (text ?? string.Empty).Trim();
        if (trimmed.Length == 0)
        {
            error = $"schedule is empty; {Allowed}";
            return false;
        }

        var at = trimmed.IndexOf('@');
        var family = (at < 0 ? trimmed : trimmed[..at]).ToLowerInvariant();
        if (at < 0)
        {
            schedule = family switch
            {
                "cosine" => Cosine,
                "linear" => Linear,
                _ => null,
            };
            if (schedule is null)
            {
                error = $"unknown schedule '{trimmed}'; {Allowed}";
            }

            return schedule is not null;
        }

        if (family is not ("cosine" or "sigmoid"))
        {
            error = $"unknown schedule '{trimmed}'; {Allowed}";
            return false;
        }

        var parts = trimmed[(at + 1)..].Split(',');
        if (parts.Length != 3)
        {
            error = $"schedule '{trimmed}' needs exactly three numbers s,e,tau; {Allowed}";
            return false;
        }

        var values = new double[3];
        for (var i = 0; i < 3; i++)
        {
            if (!double.TryParse(parts[i].Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out values[i])
                || !double.IsFinite(values[i]))
            {
                error = $"schedule '{trimmed}': '{parts[i].Trim()}' is not a finite number; {Allowed}";
                return false;
            }
        }

        var (start, end, tau) = (values[0], values[1], values[2]);
        if (start >= end)
        {
            error = $"schedule '{trimmed}': s must be less than e; {Allowed}";
            return false;
        }

        if (tau <= 0)
        {
            error = $"schedule '{trimmed}': tau must be greater than 0; {Allowed}";
            return false;
        }

        // cos(u·π/2) is non-negative and falling only on [0, 1]: outside it v(u)^(2τ) is NaN for fractional τ, or γ rises.
        if (family == "cosine" && (start < 0 || end > 1))
        {
            error = $"schedule '{trimmed}': a cosine window needs 0 <= s < e <= 1; {Allowed}";
            return false;
        }

        WindowSchedule candidate = family == "cosine"
            ? new CosineWindowSchedule(start, end, tau)
            : new SigmoidSchedule(start, end, tau);

        // γ divides by v(s) − v(e): when tau makes v(s) and v(e) equal (or nearly, in float64), γ is 0/0 = NaN.
        if (!double.IsNormal(candidate.Spread) || candidate.Spread < 0)
        {
            error = $"schedule '{trimmed}': tau makes v(s) and v(e) equal in float64, so γ is undefined; {Allowed}";
            return false;
        }

        // Windows with v(s) = v(e), or cosines past u = 1 with fractional τ, give NaN somewhere in [0, 1].
        for (var i = 0; i <= ProbePoints; i++)
        {
            if (!double.IsFinite(candidate.Gamma((double)i / ProbePoints)))
            {
                error = $"schedule '{trimmed}' gives no finite γ at t = {(double)i / ProbePoints}; {Allowed}";
                return false;
            }
        }

        schedule = candidate;
        return true;
    }

    /// <summary>
    /// Whether <paramref name="steps"/> sampler steps can use the schedule: every step but the last starts at
    /// t ≥ 1/steps, where γ must be below 1, since the step divides by √(1 − γ) (RinSampler). γ never rises with t,
    /// so checking the smallest such t is enough.
    /// </summary>
    public static bool TryCheckSteps(Schedule schedule, int steps, out string? error)
    {
        ArgumentNullException.ThrowIfNull(schedule);
        error = null;
        var smallestT = 1.0 - (double)(steps - 1) / steps; // the sampler's own expression for its last step's t
        if (steps < 1 || schedule.Gamma(smallestT) < 1)
        {
            return true;
        }

        error = $"schedule '{schedule.Text}' stays at γ = 1 (no noise) until t = {Format(smallestT)}, so {steps} steps would divide by √(1 − γ) = 0; "
            + "use a larger tau, a wider window or fewer steps";
        return false;
    }

    public static Schedule Parse(string text) =>
        TryParse(text, out var schedule, out var error) ? schedule! : throw new FormatException(error);

    internal static string Format(double value) => value.ToString("R", CultureInfo.InvariantCulture);
}

/// <summary><c>cosine</c>: γ = cos(((t + 0.0002)/1.00025)·π/2)² (MODEL-CONTRACT.md; improved DDPM, Nichol &amp; Dhariwal 2021).</summary>
internal sealed class DefaultCosineSchedule() : Schedule("cosine")
{
    public override double Gamma(double t)
    {
        var c = Math.Cos((t + 0.0002) / 1.00025 * Math.PI / 2);
        return c * c;
    }
}

/// <summary><c>linear</c>: γ = clip(1 − t, 1e-9, 1) (Chen 2023, eq. in §2).</summary>
internal sealed class LinearSchedule() : Schedule("linear")
{
    public override double Gamma(double t) => Math.Clamp(1 - t, MinGamma, 1);
}

/// <summary>A window of a function v: γ = (v at t's point of [s, e] − the end value) / <see cref="Spread"/>.</summary>
internal abstract class WindowSchedule : Schedule
{
    private readonly double _start;
    private readonly double _end;

    protected WindowSchedule(string kind, double start, double end, double tau)
        : base($"{kind}@{Schedules.Format(start)},{Schedules.Format(end)},{Schedules.Format(tau)}")
    {
        (_start, _end, Tau) = (start, end, tau);
        VStart = V(start);
        VEnd = V(end);
    }

    protected double Tau { get; }

    protected double VStart { get; }

    protected double VEnd { get; }

    /// <summary>The divisor of γ: v(s) − v(e) for the cosine, v(e) − v(s) for the sigmoid; must be a positive normal number.</summary>
    public abstract double Spread { get; }

    /// <summary>The window's v(u); reads only <see cref="Tau"/> (it runs in the constructor).</summary>
    protected abstract double V(double u);

    // (v(e) − v(u)) / (v(e) − v(s)) for the sigmoid is this with both terms negated: the same bits.
    public override double Gamma(double t) =>
        Math.Clamp((V(t * (_end - _start) + _start) - VEnd) / (VStart - VEnd), MinGamma, 1);
}

/// <summary>
/// <c>cosine@s,e,τ</c>: v(u) = cos(u·π/2)^(2τ); γ = clip((v(t(e−s)+s) − v(e)) / (v(s) − v(e)), 1e-9, 1)
/// (Chen 2023, Algorithm 1, cosine_schedule).
/// </summary>
internal sealed class CosineWindowSchedule(double start, double end, double tau) : WindowSchedule("cosine", start, end, tau)
{
    public override double Spread => VStart - VEnd;

    protected override double V(double u) => Math.Pow(Math.Cos(u * Math.PI / 2), 2 * Tau);
}

/// <summary>
/// <c>sigmoid@s,e,τ</c>: v(u) = σ(u/τ); γ = clip((v(e) − v(t(e−s)+s)) / (v(e) − v(s)), 1e-9, 1)
/// (Chen 2023, Algorithm 1, sigmoid_schedule).
/// </summary>
internal sealed class SigmoidSchedule(double start, double end, double tau) : WindowSchedule("sigmoid", start, end, tau)
{
    public override double Spread => VEnd - VStart;

    protected override double V(double u) => 1 / (1 + Math.Exp(-u / Tau));
}
