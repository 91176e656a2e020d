namespace RinServe.Diffusion;

/// <summary>
/// One sampling method: how a row's x_t moves to the next step once the network has predicted x̂0. A sampler is one
/// file (a subclass) and one line in <see cref="Samplers.All"/>; the row, the network batch, guidance, the x̂0 clip,
/// input normalization and self-conditioning are the core's and the same for all of them (MODEL-CONTRACT.md, "Sampling").
/// Instances hold no per-row state: whatever a sampler remembers between steps lives in the row's history.
/// </summary>
public abstract class Sampler
{
    /// <summary>The name in requests, model files, the CLI and job documents (lower case).</summary>
    public abstract string Name { get; }

    /// <summary>Other spellings accepted on input (the trainer's, e.g. <c>ddpm_small</c>); never written out.</summary>
    public virtual IReadOnlyList<string> Aliases => [];

    /// <summary>A fresh N(0, I) z is drawn for every step (from the row's seed and the step alone).</summary>
    public virtual bool Stochastic => false;

    /// <summary>Image-sized buffers the row keeps for this sampler between steps (a multistep solver's earlier x̂0).</summary>
    public virtual int HistoryImages => 0;

    /// <summary>
    /// One step of one row: reads x_t, the network's prediction(s), z and the history, writes x_t' into x (in place),
    /// updates the history, writes the clipped x̂0 when <see cref="RowStep.X0"/> is not empty, and returns Σx, Σx² of x_t'
    /// (the next step's input normalization needs them). Implementations call <see cref="RowKernel.Run"/> with their update.
    /// </summary>
    internal abstract (double Sum, double SumOfSquares) Step(in StepTimes times, in Denoising denoising, in RowStep row);

    public override string ToString() => Name;
}

/// <summary>The registry of samplers: the one place that lists them.</summary>
public static class Samplers
{
    /// <summary>Every sampler the service offers, in the order documents list them.</summary>
    public static IReadOnlyList<Sampler> All { get; } = [Ddim.Instance, Ddpm.LargeVariance, Ddpm.SmallVariance, DpmSolver2M.Instance];

    /// <summary>The names of <see cref="All"/>, for error messages and the API document.</summary>
    public static IReadOnlyList<string> Names { get; } = All.Select(s => s.Name).ToArray();

    /// <summary>Case-insensitive, by name or alias.</summary>
    public static bool TryGet(string? text, out Sampler sampler)
    {
        var key = (text ?? string.Empty).Trim();
        foreach (var candidate in All)
        {
            if (string.Equals(candidate.Name, key, StringComparison.OrdinalIgnoreCase)
                || candidate.Aliases.Any(a => string.Equals(a, key, StringComparison.OrdinalIgnoreCase)))
            {
                sampler = candidate;
                return true;
            }
        }

        sampler = Ddim.Instance;
        return false;
    }

    /// <summary>As <see cref="TryGet"/>, throwing <see cref="ArgumentException"/> that names the allowed samplers.</summary>
    public static Sampler Get(string text) =>
        TryGet(text, out var sampler) ? sampler : throw new ArgumentException($"unknown sampler '{UserText.Shorten(text)}'; allowed: {string.Join(", ", Names)}", nameof(text));
}
