using System.Globalization;
using Microsoft.Extensions.Logging;
using RinServe.Diffusion;

namespace RinServe.Onnx;

/// <summary>The loaded models of a folder, found by resolution (and name when several share one).</summary>
public sealed class ModelRegistry : IDisposable
{
    public ModelRegistry(IReadOnlyList<LoadedModel> models)
    {
        ArgumentNullException.ThrowIfNull(models);
        var duplicate = models.GroupBy(m => m.Spec.Name, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null)
        {
            throw new ArgumentException($"rin.name '{duplicate.Key}' is used by {string.Join(", ", duplicate.Select(m => m.Path))}", nameof(models));
        }

        Models = models.OrderBy(m => m.Spec.Resolution).ThenBy(m => m.Spec.Name, StringComparer.Ordinal).ToArray();
    }

    public IReadOnlyList<LoadedModel> Models { get; }

    public IReadOnlyList<int> Resolutions => Models.Select(m => m.Spec.Resolution).Distinct().ToArray();

    /// <summary>
    /// Loads every <c>*.onnx</c> in <paramref name="folder"/>. A file that breaks the contract (or repeats a
    /// <c>rin.name</c>) is logged as an error and skipped; a folder with no valid model throws.
    /// </summary>
    public static ModelRegistry LoadFolder(string folder, OnnxModelOptions options, ILoggerFactory loggerFactory)
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
                "Model registry: {Count} model(s), resolutions {Resolutions}",
                loaded.Count, string.Join(", ", loaded.Select(m => m.Spec.Resolution).Distinct().Order()));
            return new ModelRegistry(loaded);
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
    /// Finds the model for <paramref name="resolution"/> (omitted: the only loaded resolution) and
    /// <paramref name="name"/> (omitted: the only model at that resolution). The error lists what is available.
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
        var resolutions = string.Join(", ", Resolutions.Select(r => r.ToString(CultureInfo.InvariantCulture)));
        var atResolution = Models.Where(m => resolution is null || m.Spec.Resolution == resolution).ToArray();
        if (atResolution.Length == 0)
        {
            (error, parameter) = ($"no model for res={resolution}; loaded resolutions: {resolutions}", "res");
            return false;
        }

        var matches = name is null ? atResolution : atResolution.Where(m => string.Equals(m.Spec.Name, name, StringComparison.Ordinal)).ToArray();
        if (matches.Length == 1)
        {
            model = matches[0];
            return true;
        }

        (error, parameter) = matches switch
        {
            [] => ($"no model named '{UserText.Shorten(name!)}'{(resolution is null ? string.Empty : $" at res={resolution}")}; loaded models: {List(atResolution)}", "model"),
            _ when matches.Select(m => m.Spec.Resolution).Distinct().Count() > 1 =>
                ($"res is required when several resolutions are loaded; loaded resolutions: {resolutions}", "res"),
            _ => ($"several models share res={matches[0].Spec.Resolution}; name one with model: {List(matches)}", "model"),
        };
        return false;
    }

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
