using RinServe.Diffusion;
using System.Text.Json.Serialization;
using RinServe.Jobs;
using RinServe.Onnx;
using RinServe.Worker;

namespace RinServe.WebApi;

/// <summary>A job as the API shows it.</summary>
/// <param name="Status">queued, running, succeeded, failed or canceled.</param>
/// <param name="QueuePosition">1 = next to run; null unless queued.</param>
/// <param name="Images">URLs of the images, once succeeded.</param>
/// <param name="Webhook">The URL told when the job ends, when the request named one.</param>
/// <param name="Preview">
/// Only in events of <c>GET /jobs/{id}/events?preview=k</c>, when a new x̂0 preview is there; absent everywhere else.
/// </param>
public sealed record JobDocument(
    string Id,
    string Status,
    string Model,
    long Class,
    string? ClassName,
    ulong Seed,
    int Steps,
    string Sampler,
    string Schedule,
    float Guidance,
    int N,
    string Format,
    int? QueuePosition,
    JobProgressDocument Progress,
    DateTimeOffset CreatedAt,
    DateTimeOffset? StartedAt,
    DateTimeOffset? FinishedAt,
    string? Error,
    IReadOnlyList<string> Images,
    JobLinks Links,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] JobPreviewDocument? Preview = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Webhook = null)
{
    public static JobDocument From(JobRecord job, ModelRegistry registry, TimeProvider time)
    {
        var spec = job.Spec;
        var names = registry.Models.FirstOrDefault(m => m.Spec.Name == spec.Model)?.Spec.ClassNames;
        double? eta = null;
        if (job.State == JobState.Running && job.Step > 0 && job.StartedAt is { } started)
        {
            // Seconds per finished step so far, times the steps left.
            var perStep = (time.GetUtcNow() - started).TotalSeconds / job.Step;
            eta = Math.Round(perStep * (spec.Steps - job.Step), 2);
        }
        var self = $"/jobs/{job.Id}";
        return new JobDocument(
            job.Id,
            job.State.ToString().ToLowerInvariant(),
            spec.Model,
            spec.ClassId,
            names is not null && spec.ClassId < names.Count ? names[(int)spec.ClassId] : null,
            spec.Seed,
            spec.Steps,
            spec.Sampler,
            spec.Schedule,
            spec.Guidance,
            spec.Count,
            spec.Format,
            job.QueuePosition,
            new JobProgressDocument(job.State == JobState.Succeeded ? spec.Steps : job.Step, spec.Steps, eta),
            job.CreatedAt,
            job.StartedAt,
            job.FinishedAt,
            job.Error,
            [.. Enumerable.Range(0, job.State == JobState.Succeeded ? job.ImageCount : 0).Select(k => $"{self}/images/{k}")],
            new JobLinks(self, $"{self}/events"),
            Webhook: spec.Webhook);
    }
}

/// <summary>Sampler progress; <paramref name="EtaSeconds"/> is an estimate from the steps done so far.</summary>
public sealed record JobProgressDocument(int Step, int Steps, double? EtaSeconds);

/// <summary>
/// A low-resolution preview of x̂0, the sampler's current estimate of the final images: each image of the job
/// area-averaged to at most 64 pixels a side, tiled row by row in ceil(√n) columns (one image when n = 1).
/// </summary>
/// <param name="Step">The sampler step it was taken after.</param>
/// <param name="Png">The preview as a base64 PNG (<c>data:image/png;base64,</c> + this is an image URL).</param>
public sealed record JobPreviewDocument(int Step, int Width, int Height, string Png)
{
    public static JobPreviewDocument From(JobPreview preview) =>
        new(preview.Step, preview.Image.Width, preview.Image.Height, Convert.ToBase64String(ImageEncoder.EncodePreview(preview.Image)));
}

/// <summary>Where to look next: the job itself and its event stream.</summary>
public sealed record JobLinks(string Self, string Events);

/// <summary>A loaded model as GET /models shows it.</summary>
/// <param name="Family">
/// Its family (<c>rin.family</c>, else the name up to its first '-'); <c>model=</c> takes it with <c>res</c> (<c>model=fmnist&amp;res=768</c>).
/// </param>
/// <param name="IsDefault">
/// Whether a request that names only its <c>res</c> (no <c>model</c>) gets this model: the only one at its resolution, or the
/// one of the family RinServe:DefaultFamily where several share it.
/// </param>
/// <param name="DefaultGuidance">
/// The guidance weight a request without <c>guidance</c> gets: the model's <c>rin.default_guidance</c> (0 when it has none),
/// at most Sampling:MaxGuidance.
/// </param>
/// <param name="GuidanceInterval">
/// [low, high]: the steps whose t (1 = noise, 0 = the image) lies in it are guided, the others are not: the model's
/// <c>rin.guidance_interval</c>, chosen by its trainer's judge; [0, 1] (every step) when it has none.
/// </param>
/// <param name="DefaultSampler">The sampler a request without <c>sampler</c> gets: the model's <c>rin.default_sampler</c>, else ddim.</param>
/// <param name="DefaultSteps">
/// The steps a request without <c>steps</c> (and with the default sampler) gets: the model's <c>rin.default_steps</c>, else
/// Sampling:DefaultSteps, at most Sampling:MaxSteps.
/// </param>
public sealed record ModelDocument(
    string Name,
    string Family,
    bool IsDefault,
    int Resolution,
    int Channels,
    IReadOnlyList<ClassDocument> Classes,
    string Prediction,
    float InputScale,
    bool SupportsGuidance,
    float DefaultGuidance,
    IReadOnlyList<double> GuidanceInterval,
    string DefaultSampler,
    int DefaultSteps,
    int? NullClass,
    string ExecutionProvider,
    bool Trained,
    string Path);

/// <summary>One class of a model: its id and name.</summary>
public sealed record ClassDocument(int Id, string Name);
