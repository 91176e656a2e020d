using RinServe.Onnx;
using RinServe.WebApi.Security;

namespace RinServe.WebApi.Apis;

public static class ModelsApi
{
    public static RouteGroupBuilder MapModelsApi(this IEndpointRouteBuilder app)
    {
        var api = app.MapGroup("/models").WithTags("Models").AddEndpointFilter<ApiKeyFilter>();
        api.MapGet("/", GetModels)
            .WithSummary("Loaded models")
            .WithDescription("Name, resolution, channels, classes (id and name), prediction, input scale, guidance support and the execution provider in use.")
            .Produces<ModelDocument[]>(StatusCodes.Status200OK)
            .ProducesProblem(StatusCodes.Status401Unauthorized)
            .ProducesProblem(StatusCodes.Status403Forbidden);
        return api;
    }

    private static Ok<ModelDocument[]> GetModels(ModelRegistry registry) =>
        TypedResults.Ok(registry.Models.Select(m => new ModelDocument(
            m.Spec.Name,
            m.Spec.Resolution,
            m.Spec.Channels,
            [.. m.Spec.ClassNames.Select((name, id) => new ClassDocument(id, name))],
            m.Spec.Prediction.ToString().ToLowerInvariant(),
            m.Spec.InputScale,
            m.Spec.SupportsGuidance,
            m.Spec.NullClass,
            m.ExecutionProvider,
            m.Trained,
            Path.GetFileName(m.Path))).ToArray());
}
