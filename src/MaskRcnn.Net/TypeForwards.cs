using System.Runtime.CompilerServices;

// DuplicateSuppression moved to MaskRcnn.Net.Abstractions (the post-processing shared with the ONNX Runtime package);
// assemblies compiled against this one still find it.
[assembly: TypeForwardedTo(typeof(MaskRcnn.Net.DuplicateSuppression))]
