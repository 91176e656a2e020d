namespace RinServe.Diffusion;

/// <summary>How an answer quotes text a caller sent (a parameter, a model name): never more than a short prefix.</summary>
public static class UserText
{
    /// <summary>The longest quote; longer text is cut there and marked with "...".</summary>
    public const int MaxQuoted = 40;

    /// <summary>User text quoted in an error, cut to <see cref="MaxQuoted"/> characters so a huge input never makes a huge answer.</summary>
    public static string Shorten(string text) => text.Length <= MaxQuoted ? text : text[..MaxQuoted] + "...";
}
