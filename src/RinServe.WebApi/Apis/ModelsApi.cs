using Microsoft.Extensions.Options;
using RinServe.Onnx;
using RinServe.WebApi.Generation;
using RinServe.WebApi.Hosting;
using RinServe.WebApi.Security;

namespace RinServe.WebApi.Apis;

public static class ModelsApi
{
    public static RouteGroupBuilder MapModelsApi(this IEndpointRouteBuilder app)
    {
        var api = app.MapGroup("/models").WithTags("Models").AddEndpointFilter<ApiKeyFilter>();
        api.MapGet("/", GetModels)
            .WithName("ListModels")
            .WithSummary("Loaded models")
            .WithDescription(
                "Name, family, whether it is the default at its resolution (isDefault: the model POST /generate uses when a request names "
                + "only its res: the only model there, else the one of the family RinServe:DefaultFamily), resolution, channels, classes "
                + "(id and name), prediction, input scale, guidance support, the default guidance "
                + "(what POST /generate uses when a request names no guidance: the model's rin.default_guidance, at most Sampling:MaxGuidance), "
                + "the guidance interval (the part of t, 1 = noise to 0 = image, that guidance acts on: the model's rin.guidance_interval, else [0, 1]), "
                + "the default sampler and steps (the model's rin.default_sampler and rin.default_steps, chosen by its trainer's judge; "
                + "else ddim and Sampling:DefaultSteps) and the execution provider in use. Ordered by resolution, then name.")
            .Produces<ModelDocument[]>(StatusCodes.Status200OK)
            .ProducesProblems(StatusCodes.Status401Unauthorized, StatusCodes.Status403Forbidden);
        return api;
    }

    private static Ok<ModelDocument[]> GetModels(ModelRegistry registry, IOptions<SamplingOptions> sampling) =>
        TypedResults.Ok(registry.Models.Select(m => new ModelDocument(
            m.Spec.Name,
            m.Spec.Family,
            registry.IsDefaultAt(m),
            m.Spec.Resolution,
            m.Spec.Channels,
            [.. m.Spec.ClassNames.Select((name, id) => new ClassDocument(id, name))],
            m.Spec.Prediction.ToString().ToLowerInvariant(),
            m.Spec.InputScale,
            m.Spec.SupportsGuidance,
            GenerateValidator.DefaultGuidance(m.Spec, sampling.Value),
            [m.Spec.GuidanceInterval.Low, m.Spec.GuidanceInterval.High],
            GenerateValidator.DefaultSampling(m.Spec, sampling.Value).Sampler,
            GenerateValidator.DefaultSampling(m.Spec, sampling.Value).Steps,
            m.Spec.NullClass,
            m.ExecutionProvider,
            m.Trained,
            Path.GetFileName(m.Path))).ToArray());
}
