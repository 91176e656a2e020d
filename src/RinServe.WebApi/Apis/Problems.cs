namespace RinServe.WebApi;

/// <summary>RFC 7807 answers that name the parameter at fault.</summary>
public static class Problems
{
    public static ProblemHttpResult Problem(int status, string title, string detail, string? parameter = null, IDictionary<string, object?>? extra = null)
    {
        var extensions = new Dictionary<string, object?>(extra ?? new Dictionary<string, object?>());
        if (parameter is not null)
        {
            extensions["parameter"] = parameter;
            extensions["errors"] = new Dictionary<string, string[]> { [parameter] = [detail] };
        }
        return TypedResults.Problem(detail, statusCode: status, title: title, extensions: extensions);
    }

    public static ProblemHttpResult BadParameter(string parameter, string detail) =>
        Problem(StatusCodes.Status400BadRequest, $"Invalid parameter '{parameter}'", detail, parameter);

    public static ProblemHttpResult JobNotFound(string id) =>
        Problem(StatusCodes.Status404NotFound, "Job not found", $"No job '{id}': unknown, expired (results are kept for Jobs:ResultTtl), or made with another API key.", "id");
}
