using System.Globalization;
using Microsoft.Extensions.Logging;
using RinServe.Diffusion;

namespace RinServe.Onnx;

/// <summary>
/// The loaded models of a folder, found by resolution, and by model or family name or the default family when several
/// share one (<see cref="TryResolve(int?, string?, out LoadedModel?, out string?, out string?)"/>).
/// </summary>
public sealed class ModelRegistry : IDisposable
{
    /// <param name="models">The models; their names must differ.</param>
    /// <param name="defaultFamily">The family whose model a request that names only a shared resolution gets; null: none.</param>
    public ModelRegistry(IReadOnlyList<LoadedModel> models, string? defaultFamily = null)
    {
        ArgumentNullException.ThrowIfNull(models);
        var duplicate = models.GroupBy(m => m.Spec.Name, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null)
        {
            throw new ArgumentException($"rin.name '{duplicate.Key}' is used by {string.Join(", ", duplicate.Select(m => m.Path))}", nameof(models));
        }

        Models = models.OrderBy(m => m.Spec.Resolution).ThenBy(m => m.Spec.Name, StringComparer.Ordinal).ToArray();
        DefaultFamily = defaultFamily;
    }

    public IReadOnlyList<LoadedModel> Models { get; }

    /// <summary>The family (<see cref="ModelSpec.Family"/>) that a request naming only a shared resolution gets; null: none.</summary>
    public string? DefaultFamily { get; }

    public IReadOnlyList<int> Resolutions => Models.Select(m => m.Spec.Resolution).Distinct().ToArray();

    /// <summary>
    /// Loads every <c>*.onnx</c> in <paramref name="folder"/>. A file that breaks the contract (or repeats a
    /// <c>rin.name</c>) is logged as an error and skipped; a folder with no valid model throws. A
    /// <paramref name="defaultFamily"/> that no loaded model belongs to is logged as a warning.
    /// </summary>
    public static ModelRegistry LoadFolder(string folder, OnnxModelOptions options, ILoggerFactory loggerFactory, string? defaultFamily = null)
    {
        ArgumentNullException.ThrowIfNull(loggerFactory);
        var logger = loggerFactory.CreateLogger<ModelRegistry>();
        if (!Directory.Exists(folder))
        {
            throw new DirectoryNotFoundException($"model folder '{folder}' does not exist");
        }

        var files = Directory.GetFiles(folder, "*.onnx").Order(StringComparer.Ordinal).ToArray();
        var loaded = new List<LoadedModel>();
        try
        {
            foreach (var file in files)
            {
                try
                {
                    var model = ModelLoader.Load(file, options, logger);
                    if (loaded.FirstOrDefault(m => m.Spec.Name == model.Spec.Name) is { } first)
                    {
                        logger.LogError("Skipping model file {Path}: rin.name '{Name}' is already used by {Other}", file, model.Spec.Name, first.Path);
                        model.Dispose();
                        continue;
                    }

                    loaded.Add(model);
                }
                catch (ModelContractException e)
                {
                    logger.LogError("Skipping model file {Path}: {Error}", file, e.Message);
                }
            }

            if (loaded.Count == 0)
            {
                throw new InvalidOperationException(
                    $"no valid model in '{folder}' ({files.Length} *.onnx file(s) found; see the errors logged for each)");
            }

            logger.LogInformation(
                "Model registry: {Count} model(s), resolutions {Resolutions}, default family {DefaultFamily}",
                loaded.Count, string.Join(", ", loaded.Select(m => m.Spec.Resolution).Distinct().Order()), defaultFamily ?? "none");
            if (defaultFamily is not null && !loaded.Any(m => m.Spec.Family == defaultFamily))
            {
                logger.LogWarning(
                    "No loaded model is of the default family '{DefaultFamily}' (families: {Families}): a request that names only a resolution "
                    + "several models share must name one with model",
                    defaultFamily, string.Join(", ", loaded.Select(m => m.Spec.Family).Distinct().Order(StringComparer.Ordinal)));
            }
            return new ModelRegistry(loaded, defaultFamily);
        }
        catch
        {
            foreach (var model in loaded)
            {
                model.Dispose();
            }

            throw;
        }
    }

    /// <summary>
    /// Finds the model for <paramref name="resolution"/> (omitted: the only loaded resolution, or the only one of the named
    /// model or family) and <paramref name="name"/>, a model name or a family name (omitted: the only model at that
    /// resolution, else the one of <see cref="DefaultFamily"/>). The error lists what is available.
    /// </summary>
    public bool TryResolve(int? resolution, string? name, out LoadedModel? model, out string? error) =>
        TryResolve(resolution, name, out model, out error, out _);

    /// <summary>
    /// The one resolution of <c>res</c> and <c>model</c> (POST /generate uses it): as above, and names the
    /// request parameter at fault, <c>res</c> or <c>model</c>.
    /// </summary>
    public bool TryResolve(int? resolution, string? name, out LoadedModel? model, out string? error, out string? parameter)
    {
        model = null;
        (error, parameter) = (null, null);
        var atResolution = Models.Where(m => resolution is null || m.Spec.Resolution == resolution).ToArray();
        if (atResolution.Length == 0)
        {
            (error, parameter) = ($"no model for res={resolution}; loaded resolutions: {ResolutionList}", "res");
            return false;
        }

        var matches = atResolution;
        if (name is not null)
        {
            // A model name first, then a family name.
            matches = atResolution.Where(m => string.Equals(m.Spec.Name, name, StringComparison.Ordinal)).ToArray();
            if (matches.Length == 0)
            {
                matches = atResolution.Where(m => string.Equals(m.Spec.Family, name, StringComparison.Ordinal)).ToArray();
            }
        }
        else if (matches.Length > 1 && matches.All(m => m.Spec.Resolution == matches[0].Spec.Resolution))
        {
            // Several models share the resolution: the default family's, when it has exactly one there.
            var ofDefault = matches.Where(m => m.Spec.Family == DefaultFamily).ToArray();
            matches = ofDefault.Length == 1 ? ofDefault : matches;
        }

        if (matches.Length == 1)
        {
            model = matches[0];
            return true;
        }

        (error, parameter) = matches switch
        {
            [] => ($"no model or family named '{UserText.Shorten(name!)}'{(resolution is null ? string.Empty : $" at res={resolution}")}; "
                + $"loaded models: {List(atResolution)}; families: {string.Join(", ", atResolution.Select(m => m.Spec.Family).Distinct())}", "model"),
            _ when matches.Select(m => m.Spec.Resolution).Distinct().Count() > 1 => (name is null
                ? $"res is required when several resolutions are loaded; loaded resolutions: {ResolutionList}"
                : $"res is required: family '{name}' has several resolutions: {string.Join(", ", matches.Select(m => m.Spec.Resolution))}", "res"),
            _ => ($"several models share res={matches[0].Spec.Resolution}; name one with model: {List(matches)}", "model"),
        };
        return false;
    }

    /// <summary>
    /// Whether <paramref name="model"/> is what a request naming only its resolution gets: the only model there, or the
    /// default family's. GET /models shows it.
    /// </summary>
    public bool IsDefaultAt(LoadedModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        return TryResolve(model.Spec.Resolution, null, out var chosen, out _) && ReferenceEquals(chosen, model);
    }

    private string ResolutionList => string.Join(", ", Resolutions.Select(r => r.ToString(CultureInfo.InvariantCulture)));

    private static string List(IEnumerable<LoadedModel> models) =>
        string.Join(", ", models.Select(m => $"{m.Spec.Name} (res={m.Spec.Resolution})"));

    public void Dispose()
    {
        foreach (var model in Models)
        {
            model.Dispose();
        }
    }
}
